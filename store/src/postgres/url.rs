//! A Postgres URL as text: shown in a log or an error with its password masked, and
//! read for the parameters the store handles itself before tokio-postgres parses the
//! rest (tokio-postgres refuses a key it does not know, such as `sslrootcert`, and a
//! value it does not take, such as `sslmode=verify-full`).

use percent_encoding::percent_decode_str;

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

/// `url` with the parameters named in `keys` taken out, and those parameters, decoded,
/// in the order they came: from the query of `postgres://…?key=value&…`, or from the
/// `key=value` form (a value bare up to a space, or quoted `'…'`, `\` escaping a
/// character). Text that does not make pairs is kept as it is, for tokio-postgres to
/// refuse.
pub(crate) fn take_params(url: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    match ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
    {
        Some(rest) => take_query_params(url, rest, keys),
        None => take_pairs(url, keys),
    }
}

/// The URL form: the query starts at the first `?` after the user info (which ends at
/// the first `@`), as tokio-postgres reads it.
fn take_query_params(
    url: &str,
    after_scheme: &str,
    keys: &[&str],
) -> (String, Vec<(String, String)>) {
    let hosts = after_scheme.find('@').map_or(0, |at| at + 1);
    let Some(question) = after_scheme[hosts..].find('?') else {
        return (url.to_owned(), Vec::new());
    };
    let query_at = url.len() - after_scheme.len() + hosts + question;
    let (head, query) = (&url[..query_at], &url[query_at + 1..]);
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode_str(key).decode_utf8_lossy();
        if keys.contains(&key.as_ref()) {
            let value = percent_decode_str(value).decode_utf8_lossy();
            taken.push((key.into_owned(), value.into_owned()));
        } else {
            kept.push(pair);
        }
    }
    let url = match kept.is_empty() {
        true => head.to_owned(),
        false => format!("{head}?{}", kept.join("&")),
    };
    (url, taken)
}

/// The `key=value` form.
fn take_pairs(text: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    let mut kept: Vec<&str> = Vec::new();
    let mut taken = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        let Some(value) = rest[key_end..].trim_start().strip_prefix('=') else {
            break;
        };
        let (value, after) = pair_value(value.trim_start());
        let pair = &rest[..rest.len() - after.len()];
        if keys.contains(&key) {
            taken.push((key.to_owned(), value));
        } else {
            kept.push(pair);
        }
        rest = after.trim_start();
    }
    // What did not make a pair stays, for tokio-postgres to refuse.
    kept.push(rest);
    let kept = kept.into_iter().filter(|part| !part.is_empty());
    (kept.collect::<Vec<_>>().join(" "), taken)
}

/// A value of the `key=value` form, unescaped, and the text after it.
fn pair_value(text: &str) -> (String, &str) {
    let (quoted, body) = match text.strip_prefix('\'') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
            '\'' if quoted => return (value, &body[i + 1..]),
            c if !quoted && c.is_whitespace() => return (value, &body[i..]),
            c => value.push(c),
        }
    }
    (value, "")
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

    #[test]
    fn the_named_parameters_are_taken_out_of_either_form_and_the_rest_kept() {
        let keys = ["sslmode", "sslrootcert"];
        let taken = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let cases = [
            (
                "postgres://marie:p?w@db:5432/marie?sslmode=verify-full&application_name=x&sslrootcert=/etc/ca%20dir/ca.pem",
                "postgres://marie:p?w@db:5432/marie?application_name=x",
                taken(&[
                    ("sslmode", "verify-full"),
                    ("sslrootcert", "/etc/ca dir/ca.pem"),
                ]),
            ),
            (
                "postgresql://db/marie?sslmode=require",
                "postgresql://db/marie",
                taken(&[("sslmode", "require")]),
            ),
            ("postgres://db/marie", "postgres://db/marie", taken(&[])),
            (
                "host=db sslmode = verify-ca user=marie sslrootcert='/etc/it\\'s ca.pem' password=x",
                "host=db user=marie password=x",
                taken(&[
                    ("sslmode", "verify-ca"),
                    ("sslrootcert", "/etc/it's ca.pem"),
                ]),
            ),
            ("host=db user=marie", "host=db user=marie", taken(&[])),
            // Not pairs: kept for tokio-postgres to refuse.
            (
                "sslmode=disable host",
                "host",
                taken(&[("sslmode", "disable")]),
            ),
        ];
        for (url, rest, params) in cases {
            assert_eq!(take_params(url, &keys), (rest.to_owned(), params), "{url}");
        }
    }
}
