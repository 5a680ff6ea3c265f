//! Store URLs as users write them, and as logs must show them: with the password replaced.

/// `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`; URLs without a password are unchanged.
pub fn redact_url(url: &str) -> String {
    with_password(url, Some("***"))
}

/// `redis://user:secret@host:6379/0` → `redis://user@host:6379/0`: for files that must be usable again (a resolved
/// config), where the password then comes from `REDIS_PASSWORD`.
pub fn without_password(url: &str) -> String {
    with_password(url, None)
}

/// Whether the URL carries a password.
pub fn has_password(url: &str) -> bool {
    redact_url(url) != url
}

fn with_password(url: &str, shown: Option<&str>) -> String {
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
    match (user, shown) {
        (Some(u), Some(p)) => format!("{scheme}://{u}:{p}@{host}{tail}"),
        // `redis://secret@host`: redis-rs reads a lone userinfo as the password.
        (None, Some(p)) => format!("{scheme}://{p}@{host}{tail}"),
        (Some(u), None) if !u.is_empty() => format!("{scheme}://{u}@{host}{tail}"),
        (_, None) => format!("{scheme}://{host}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{has_password, redact_url, without_password};

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
        assert_eq!(without_password("redis://u:p@h:1/2"), "redis://u@h:1/2");
        assert_eq!(without_password("rediss://:p@h"), "rediss://h");
        assert_eq!(without_password("redis://p@h"), "redis://h");
        assert_eq!(without_password("redis://h:1"), "redis://h:1");
        assert!(
            has_password("redis://:p@h") && !has_password("redis://h") && !has_password("memory")
        );
    }
}
