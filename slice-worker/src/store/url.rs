//! Store URLs as users write them (`runtime.store`, `TRAINER_STORE`), parsed once into [`StoreUrl`], and as logs
//! must show them: with the password replaced.

use super::StoreError;
use serde::{Deserialize, Serialize};

/// Where a run's store lives: parsed once, where the setting is read, so that nothing downstream compares strings.
/// Serialized as the text it was parsed from (a resolved config writes it back unchanged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StoreUrl {
    /// `"memory"`: in this process only (the embedded default).
    Memory,
    /// `redis://…`, or with `tls` `rediss://…`: one Redis server. (A cluster's URLs will be a variant of their own.)
    Redis { url: String, tls: bool },
}

impl StoreUrl {
    /// Parses a setting's text; the error redacts any password and lists what is accepted.
    pub fn parse(text: &str) -> Result<StoreUrl, StoreError> {
        if text == "memory" {
            return Ok(StoreUrl::Memory);
        }
        for (scheme, tls) in [("redis://", false), ("rediss://", true)] {
            if let Some(rest) = text.strip_prefix(scheme) {
                if rest.is_empty() {
                    break;
                }
                return Ok(StoreUrl::Redis {
                    url: text.to_string(),
                    tls,
                });
            }
        }
        Err(StoreError::BadUrl {
            url: redact_url(text),
            reason: "use \"memory\" or a redis:// or rediss:// URL".into(),
        })
    }

    /// Whether other processes can reach it (a worker process or a Lambda function needs that).
    pub fn is_shared(&self) -> bool {
        !matches!(self, StoreUrl::Memory)
    }

    /// The URL as written, password included: for connecting, never for showing.
    pub fn as_str(&self) -> &str {
        match self {
            StoreUrl::Memory => "memory",
            StoreUrl::Redis { url, .. } => url,
        }
    }

    /// The URL with its password replaced by `***`: for logs and errors.
    pub fn redacted(&self) -> String {
        redact_url(self.as_str())
    }

    /// The same store without the password in the URL (which then comes from `REDIS_PASSWORD`): for files that
    /// must be usable again, such as a resolved config.
    pub fn without_password(&self) -> StoreUrl {
        match self {
            StoreUrl::Memory => StoreUrl::Memory,
            StoreUrl::Redis { url, tls } => StoreUrl::Redis {
                url: without_password(url),
                tls: *tls,
            },
        }
    }

    /// Whether the URL carries a password.
    pub fn has_password(&self) -> bool {
        has_password(self.as_str())
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<StoreUrl, StoreError> {
        StoreUrl::parse(text)
    }
}

impl TryFrom<String> for StoreUrl {
    type Error = StoreError;
    fn try_from(text: String) -> Result<StoreUrl, StoreError> {
        StoreUrl::parse(&text)
    }
}

impl From<StoreUrl> for String {
    fn from(url: StoreUrl) -> String {
        url.as_str().to_string()
    }
}

/// Shows the redacted URL, so that a store in a log line or an error never leaks its password.
impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`; URLs without a password are unchanged.
pub fn redact_url(url: &str) -> String {
    with_password(url, Some("***"))
}

/// `redis://user:secret@host:6379/0` → `redis://user@host:6379/0`: for files that must be usable again (a resolved
/// config), where the password then comes from `REDIS_PASSWORD`.
pub fn without_password(url: &str) -> String {
    with_password(url, None)
}

/// `text` with the password of every URL in it replaced by `***`: for error messages that quote what a user wrote
/// (a config line, a `--set`), where a URL the parser refused may still hold a password. A URL runs from its
/// `scheme://` to the next space, quote or line end.
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |j| j + 1);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '`')
            .map_or(rest.len(), |j| i + j);
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
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
    use super::{has_password, redact_url, redact_urls_in, without_password, StoreUrl};

    #[test]
    fn passwords_in_quoted_text_are_redacted() {
        let shown = redact_urls_in(
            "17 | store = \"ftp://u:secret@x\"\n --set runtime.store=redis://:pw2@h:1 ok",
        );
        assert!(
            !shown.contains("secret") && !shown.contains("pw2"),
            "{shown}"
        );
        assert!(
            shown.contains("ftp://u:***@x") && shown.contains("redis://:***@h:1"),
            "{shown}"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
        assert_eq!(redact_urls_in("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn store_urls_parse_once_into_their_kind() {
        assert_eq!(StoreUrl::parse("memory").ok(), Some(StoreUrl::Memory));
        let tls = StoreUrl::parse("rediss://:pw@h:6380").ok();
        assert!(matches!(tls, Some(StoreUrl::Redis { tls: true, .. })));
        let plain = StoreUrl::parse("redis://127.0.0.1:6379").ok();
        assert!(matches!(plain, Some(StoreUrl::Redis { tls: false, .. })));
        for bad in [
            "",
            "Memory",
            "ftp://x",
            "redis://",
            "redis:/h",
            "http://u:secret@h",
        ] {
            let e = StoreUrl::parse(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                e.contains("redis://") && !e.contains("secret"),
                "{bad:?}: {e}"
            );
        }
        let url = StoreUrl::parse("redis://u:secret@h:1/0").ok();
        let shown = url.as_ref().map(|u| u.to_string()).unwrap_or_default();
        assert_eq!(shown, "redis://u:***@h:1/0");
        let kept = url
            .map(|u| String::from(u.without_password()))
            .unwrap_or_default();
        assert_eq!(kept, "redis://u@h:1/0");
    }

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
