//! The `tc` queueing discipline that holds a link to a rate: a token bucket filter on each end's egress, so that
//! the instance's downloads (the host's side) and its uploads (its own side) each get the rate.

/// Bytes on the wire per byte of TCP payload on a 1,500-byte MTU link: 1,448 bytes of payload (timestamps on) travel
/// in a 1,514-byte frame, and `tbf` counts frames. Lambda's bandwidth figures are payload (goodput) measurements, so
/// the wire rate is raised by this much for the payload to get the rate.
pub const WIRE_PER_PAYLOAD: f64 = 1514.0 / 1448.0;

/// The `tc` arguments (after `tc [-n NS]`) that shape `dev`'s egress to `payload_bytes_per_s` of TCP payload.
pub fn tbf_args(dev: &str, payload_bytes_per_s: f64) -> Vec<String> {
    let wire_bits = (payload_bytes_per_s * WIRE_PER_PAYLOAD * 8.0)
        .round()
        .max(8_000.0) as u64;
    // Ten milliseconds' worth of tokens, at least 32 KiB. Measured on a 150 MB/s link (64 MB read by one TCP
    // stream): 4 ms of burst delivered 0.89 of the rate, 10 ms 0.93; a longer burst would let small tensors pass
    // unshaped.
    let burst = ((payload_bytes_per_s * 0.010) as u64).max(32 * 1024);
    [
        "qdisc",
        "replace",
        "dev",
        dev,
        "root",
        "tbf",
        "rate",
        &format!("{wire_bits}bit"),
        "burst",
        &burst.to_string(),
        "latency",
        "100ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_rate_carries_the_payload_rate_in_bits_with_a_burst_of_at_least_32_kib() {
        let args = tbf_args("v0", 37.5e6);
        let rate = args.iter().position(|a| a == "rate").map(|i| &args[i + 1]);
        // 37.5 MB/s of payload: 300 Mbit/s × 1514/1448.
        assert_eq!(rate.map(String::as_str), Some("313674033bit"));
        let burst = args.iter().position(|a| a == "burst").map(|i| &args[i + 1]);
        assert_eq!(burst.map(String::as_str), Some("375000"));
        let slow = tbf_args("v0", 1e6);
        assert!(slow.contains(&"32768".to_string()), "{slow:?}");
    }
}
