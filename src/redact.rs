//! Secrets never printed (docs/SECURITY.md): the one place that turns a database URL (or a
//! bundle location) into the text a message, a progress line, an error or a report shows.
//!
//! [`display_url`] masks the password and every query parameter that can carry a secret
//! (`password=`, `pass=`, `pwd=`, `sslpassword=`, `secret=`, and any key containing
//! `password`, `passwd`, `token`, `key`, `secret` or `credential`, case-insensitive). A URL
//! that does not parse is shown as `<database URL>`, never as its raw text: a password with an
//! unescaped `/` or `#` is exactly what makes a URL unparsable. [`scrub`] withholds a driver's
//! message when it quotes any secret of the URL it was given.

/// What an unparsable database URL is shown as.
pub const UNPARSABLE_DATABASE_URL: &str = "<database URL>";
/// What an unparsable bundle URL (an object-store location) is shown as.
pub const UNPARSABLE_BUNDLE_URL: &str = "<bundle URL>";
/// What a masked password or secret parameter is shown as.
pub const MASK: &str = "***";

/// Whether a query parameter's name says its value is a secret.
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "pass" | "pwd" | "passwd" | "password" | "sslpassword" | "secret"
    ) || ["password", "passwd", "token", "key", "secret", "credential"]
        .iter()
        .any(|s| k.contains(s))
}

/// A query string with every secret parameter's value masked.
fn mask_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if secret_key(&decode(k)) => format!("{k}={MASK}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent- and `+`-decoded text (lossy), as a query parser reads it.
fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The URL as messages show it; `placeholder` when it does not parse as `scheme://…`.
fn render(url: &str, placeholder: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return placeholder.to_string();
    };
    // `user:pw@host` parses as scheme `user` with an opaque path: not a URL ferry reads.
    if u.cannot_be_a_base() || !url.contains("://") {
        return placeholder.to_string();
    }
    if u.password().is_some() && u.set_password(Some(MASK)).is_err() {
        return placeholder.to_string();
    }
    // An `@` after the authority is the tail of a password with an unescaped `/`, `?` or
    // `#` (`postgres://u:12/pw@host/db` parses as host `u`, port 12, path `/pw@host/db`);
    // a database URL has no fragment, so one is such a tail too.
    if u.path().contains('@')
        || u.query().is_some_and(|q| q.contains('@'))
        || u.fragment().is_some()
    {
        return placeholder.to_string();
    }
    if let Some(q) = u.query().map(mask_query) {
        u.set_query(Some(&q));
    }
    u.to_string()
}

/// A database URL as every message, progress line, error and report shows it: password and
/// secret query parameters masked, `<database URL>` when it does not parse. A `sqlite:` URL
/// names a file: its path is shown as given (query parameters masked).
pub fn display_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        return match rest.split_once('?') {
            Some((path, q)) => format!("sqlite:{path}?{}", mask_query(q)),
            None => url.to_string(),
        };
    }
    render(url, UNPARSABLE_DATABASE_URL)
}

/// A bundle location as messages show it: a local path or `file://` URL as given; an
/// object-store URL (`s3://bucket/prefix`) through the same masking as [`display_url`], and
/// `<bundle URL>` when it does not parse.
pub fn display_location(location: &str) -> String {
    if !location.contains("://") || location.starts_with("file://") {
        return location.to_string();
    }
    render(location, UNPARSABLE_BUNDLE_URL)
}

/// Every text of `url` that must not be printed: the password and the values of secret query
/// parameters, each as written and percent-decoded, found by the URL parser and, for a URL
/// that does not parse, by reading the text the way a driver would try to (userinfo up to the
/// last `@`). The whole URL too, when it carries any.
pub fn secrets_of(url: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        for v in [s.to_string(), decode(s)] {
            if !v.is_empty() && !out.contains(&v) {
                out.push(v);
            }
        }
    };
    if let Ok(u) = url::Url::parse(url) {
        if let Some(p) = u.password() {
            add(p);
        }
        for (k, v) in u.query_pairs() {
            if secret_key(&k) {
                add(&v);
            }
        }
    }
    if let Some((_, rest)) = url.split_once("://")
        && let Some((userinfo, _)) = rest.rsplit_once('@')
        && let Some((_, pw)) = userinfo.split_once(':')
    {
        add(pw);
    }
    if let Some((_, query)) = url.split_once('?') {
        let query = query.split('#').next().unwrap_or_default();
        for pair in query.split('&') {
            if let Some((k, v)) = pair.split_once('=')
                && secret_key(&decode(k))
            {
                add(v);
            }
        }
    }
    if !out.is_empty() {
        out.push(url.to_string());
    }
    out
}

/// `text` (a driver's error message about `url`) unless it quotes a secret of the URL; then a
/// sentence saying it was withheld.
pub fn scrub(text: &str, url: &str) -> String {
    if secrets_of(url).iter().any(|s| text.contains(s.as_str())) {
        "(the underlying message is withheld: it quotes a password or secret of the URL)"
            .to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_masked() {
        assert_eq!(
            display_url("postgres://alice:S3cr3t@db.example:5432/app"),
            "postgres://alice:***@db.example:5432/app"
        );
        assert_eq!(
            display_url("mysql://root:p%40ss%2Fw@127.0.0.1:3306/test"),
            "mysql://root:***@127.0.0.1:3306/test"
        );
        assert_eq!(display_url("mariadb://u:pw@h/db"), "mariadb://u:***@h/db");
        // Nothing to mask: shown as given.
        assert_eq!(
            display_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            display_url("postgres://127.0.0.1/test?sslmode=require"),
            "postgres://127.0.0.1/test?sslmode=require"
        );
    }

    #[test]
    fn secret_query_parameters_are_masked_whatever_their_case() {
        let shown = display_url(
            "postgres://u@h/db?sslmode=require&password=A1&PASS=A2&pwd=A3&sslpassword=A4&secret=A5\
             &api_token=A6&AccessKey=A7&db_Password=A8&application_name=ferry&passwd=A9&flag",
        );
        assert_eq!(
            shown,
            "postgres://u@h/db?sslmode=require&password=***&PASS=***&pwd=***&sslpassword=***\
             &secret=***&api_token=***&AccessKey=***&db_Password=***&application_name=ferry\
             &passwd=***&flag"
        );
        assert_eq!(
            display_url("postgres://u@h/db?pass%77ord=x1"),
            "postgres://u@h/db?pass%77ord=***"
        );
        assert_eq!(
            display_url("sqlite://x.db?key=abc&mode=ro"),
            "sqlite://x.db?key=***&mode=ro"
        );
    }

    #[test]
    fn an_unparsable_url_is_never_echoed() {
        for bad in [
            "postgres://u:pw@host:99999/db",
            "postgres://u:pw@host:port/db",
            "postgres://u:p/w@host/db",
            "postgres://u:12/pw@host/db",
            "postgres://u:12#pw@host/db",
            "postgres://u:12?pw@host/db",
            "postgres://u:12#pw",
            "mysql://u:pw@[::1/db",
            "u:pw@host/db",
            "not a url",
            "",
        ] {
            let shown = display_url(bad);
            assert_eq!(shown, "<database URL>", "{bad}");
        }
    }

    #[test]
    fn sqlite_paths_and_bundle_locations_are_shown_as_given() {
        assert_eq!(display_url("sqlite://my dir/a.db"), "sqlite://my dir/a.db");
        assert_eq!(display_url("sqlite:a.db"), "sqlite:a.db");
        assert_eq!(display_location("./bundle"), "./bundle");
        assert_eq!(display_location("/tmp/b@2024"), "/tmp/b@2024");
        assert_eq!(display_location("file:///tmp/b"), "file:///tmp/b");
        assert_eq!(display_location("s3://bucket/prefix"), "s3://bucket/prefix");
        assert_eq!(
            display_location("s3://AKIA:SeCrEt@bucket/prefix?token=t0k"),
            "s3://AKIA:***@bucket/prefix?token=***"
        );
        assert_eq!(display_location("s3://a:b@c:99999/p"), "<bundle URL>");
    }

    #[test]
    fn secrets_are_found_in_parsable_and_unparsable_urls() {
        let s = secrets_of("postgres://u:S3%21cret@host:99999/db?password=Q1%2B&sslmode=x");
        for want in ["S3%21cret", "S3!cret", "Q1%2B", "Q1+"] {
            assert!(s.iter().any(|x| x == want), "{want} in {s:?}");
        }
        assert!(!s.iter().any(|x| x == "x"));
        assert!(secrets_of("postgres://u@h/db").is_empty());
        assert!(
            secrets_of("postgres://u:12/pw@h/db")
                .iter()
                .any(|x| x == "12/pw")
        );
    }

    #[test]
    fn scrub_withholds_a_message_quoting_a_secret() {
        let url = "postgres://u:Hunter2@h/db?sslpassword=Zz9";
        assert_eq!(scrub("connection refused", url), "connection refused");
        assert!(!scrub("bad password Hunter2", url).contains("Hunter2"));
        assert!(!scrub("key file needs Zz9", url).contains("Zz9"));
        assert!(!scrub(&format!("cannot parse {url}"), url).contains("Hunter2"));
    }
}
