//! Store URLs as users write them, and as logs must show them: with the password replaced.

/// `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`; URLs without a password are unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let user = userinfo.split_once(':').map(|(u, _)| u);
    match user {
        Some(u) => format!("{scheme}://{u}:***@{host}{tail}"),
        // `redis://secret@host`: redis-rs reads a lone userinfo as the password.
        None => format!("{scheme}://***@{host}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_survive() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("redis://u:p%40ss@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(redact_url("rediss://:hunter2@h"), "rediss://:***@h");
        assert_eq!(redact_url("redis://hunter2@h"), "redis://***@h");
        assert!(!redact_url("redis://default:s3cr3t@example:6380/0").contains("s3cr3t"));
    }
}
