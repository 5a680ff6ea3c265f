//! The `tc` queueing discipline that holds a link to a rate: a token bucket filter on each end's egress, so that
//! the instance's downloads (the host's side) and its uploads (its own side) each get the rate.

/// The MTU of the emulator's links. Not Ethernet's 1,500: a link shaped to 1/D of its rate delivers its packets
/// one by one, spaced out, and each wakes the receiving worker — CPU the instance is charged for in proportion to
/// the packet count, and at 1,500 bytes that count made a step's CPU grow with D (measured: 427 ms of CPU per step
/// at D = 4, 1,479 at D = 16; 380 with no shaping at D = 16). At 65,000 bytes a packet carries 45 times the payload.
pub const MTU: u32 = 65_000;

/// Bytes on the wire per byte of TCP payload: an MTU's packet carries MTU − 52 bytes of payload (IP and TCP headers
/// with timestamps) in an MTU + 14 byte frame, and `tbf` counts frames. Lambda's bandwidth figures are payload
/// (goodput) measurements, so the wire rate is raised by this much for the payload to get the rate.
pub const WIRE_PER_PAYLOAD: f64 = (MTU as f64 + 14.0) / (MTU as f64 - 52.0);

/// The `tc` arguments (after `tc [-n NS]`) that shape `dev`'s egress to `payload_bytes_per_s` of TCP payload.
pub fn tbf_args(dev: &str, payload_bytes_per_s: f64) -> Vec<String> {
    let wire_bits = (payload_bytes_per_s * WIRE_PER_PAYLOAD * 8.0)
        .round()
        .max(8_000.0) as u64;
    // Ten milliseconds' worth of tokens, at least two of the largest packets (tbf drops a packet larger than its
    // bucket; a GSO packet may reach 64 KiB). Measured on a 150 MB/s link (64 MB read by one TCP stream): 4 ms of
    // burst delivered 0.89 of the rate, 10 ms 0.93; a longer burst would let small tensors pass unshaped.
    let burst = ((payload_bytes_per_s * 0.010) as u64).max(2 * (u64::from(MTU) + 14).max(65_536));
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
    fn the_wire_rate_carries_the_payload_rate_in_bits_with_a_burst_of_at_least_two_packets() {
        let args = tbf_args("v0", 37.5e6);
        let rate = args.iter().position(|a| a == "rate").map(|i| &args[i + 1]);
        // 37.5 MB/s of payload: 300 Mbit/s × 65,014 / 64,948.
        assert_eq!(rate.map(String::as_str), Some("300304859bit"));
        let burst = args.iter().position(|a| a == "burst").map(|i| &args[i + 1]);
        assert_eq!(burst.map(String::as_str), Some("375000"));
        let slow = tbf_args("v0", 1e6);
        assert!(slow.contains(&"131072".to_string()), "{slow:?}");
    }
}
