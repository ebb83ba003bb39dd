//! A Postgres URL as it may be shown in a log or an error: its password masked.

/// What a password is shown as.
const MASK: &str = "***";

/// `url` with every password in it replaced by `***`: the one in the user-info part of
/// `postgres://user:password@host/db`, a `password=` query parameter, and a `password`
/// key of the `key=value` form (`host=db password='s e c r e t'`). It works on the text,
/// so a URL that does not parse is masked as well; where in doubt it masks more.
pub fn redact(url: &str) -> String {
    let url = match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", mask_user_info(rest)),
        None => url.to_owned(),
    };
    mask_password_values(&url)
}

/// `user:password@host…` → `user:***@host…`, taking everything up to the last `@` as
/// the user info (a password may hold `@`, `/` or `?` when the user did not escape them).
fn mask_user_info(rest: &str) -> String {
    match rest.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => rest.to_owned(),
        },
        None => rest.to_owned(),
    }
}

/// Masks the value of every `password` key: `password=value` up to a space or `&`, or a
/// quoted `password = 'it''s'` with its escapes.
fn mask_password_values(text: &str) -> String {
    const KEY: &str = "password";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(KEY) {
        let boundary = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '?' || c == '&');
        let (before, after_key) = rest.split_at(at + KEY.len());
        out.push_str(before);
        let value = after_key.trim_start();
        let Some(value) = value.strip_prefix('=').filter(|_| boundary) else {
            rest = after_key;
            continue;
        };
        out.push('=');
        out.push_str(MASK);
        rest = skip_value(value.trim_start());
    }
    out.push_str(rest);
    out
}

/// What follows a value: after its closing quote, or from the first space or `&`.
fn skip_value(value: &str) -> &str {
    if let Some(quoted) = value.strip_prefix('\'') {
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '\'' => return &quoted[i + 1..],
                _ => {}
            }
        }
        return "";
    }
    let end = value
        .find(|c: char| c.is_whitespace() || c == '&')
        .unwrap_or(value.len());
    &value[end..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_password_is_masked_and_the_rest_kept() {
        let cases = [
            (
                "postgres://marie:s3cret@db.example:5432/marie",
                "postgres://marie:***@db.example:5432/marie",
            ),
            (
                "postgresql://marie:p@ss/w?rd@10.0.0.1/marie?sslmode=disable",
                "postgresql://marie:***@10.0.0.1/marie?sslmode=disable",
            ),
            (
                "postgres://marie@h1,h2/marie?password=s3cret&application_name=x",
                "postgres://marie@h1,h2/marie?password=***&application_name=x",
            ),
            (
                "host=db user=marie password='it\\'s s3cret' dbname=marie",
                "host=db user=marie password=*** dbname=marie",
            ),
            (
                "host=db password = s3cret user=marie",
                "host=db password=*** user=marie",
            ),
            ("password=s3cret", "password=***"),
            (
                "postgres://db/marie?user=marie",
                "postgres://db/marie?user=marie",
            ),
            ("host=/run/postgresql", "host=/run/postgresql"),
            // Not a key: left as it is.
            ("host=db dbname=passwordless", "host=db dbname=passwordless"),
            ("password='unterminated s3cret", "password=***"),
        ];
        for (url, shown) in cases {
            let redacted = redact(url);
            assert_eq!(redacted, shown, "{url}");
            assert!(!redacted.contains("s3cret"), "{redacted}");
        }
    }
}
