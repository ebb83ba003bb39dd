//! The name rules of the Kubernetes API server: what an object, a port or a label may
//! be called. Used by the renderer to refuse a name before it renders it, and by the
//! lint to find one a manifest already has.

/// Why a name is refused, or `None` when it is a DNS-1123 label (`[a-z0-9-]`, at most
/// 63, alphanumeric at both ends): Namespaces, StatefulSets' pods, most names.
pub fn label_error(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 63 {
        return Some(format!("must be 1 to 63 characters, not {}", name.len()));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("may hold only lowercase letters, digits and '-'".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

/// Why a name is refused as a DNS-1035 label (a DNS-1123 label that starts with a
/// letter): Service names.
pub fn service_name_error(name: &str) -> Option<String> {
    label_error(name).or_else(|| {
        (!name.starts_with(|c: char| c.is_ascii_lowercase()))
            .then(|| "must start with a letter".to_owned())
    })
}

/// Why a name is refused as a DNS-1123 subdomain (labels joined by `.`, at most 253):
/// ConfigMaps, Deployments and most other objects.
pub fn subdomain_error(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some(format!(
            "must be at most 253 characters, not {}",
            name.len()
        ));
    }
    name.split('.').find_map(label_error)
}

/// Why a container port name is refused (IANA_SVC_NAME: at most 15 lowercase letters,
/// digits and single '-', at least one letter, no '-' at either end).
pub fn port_name_error(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 15 {
        return Some(format!("must be 1 to 15 characters, not {}", name.len()));
    }
    if let Some(reason) = label_error(name) {
        return Some(reason);
    }
    if name.contains("--") {
        return Some("must not hold '--'".into());
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        return Some("must hold a letter".into());
    }
    None
}

/// Why a label key is refused: an optional DNS subdomain prefix and `/`, then a name
/// of at most 63 characters (`[A-Za-z0-9]`, inside also `-_.`).
pub fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(reason) = prefix.and_then(subdomain_error) {
        return Some(format!("prefix {reason}"));
    }
    if name.is_empty() {
        return Some("name must not be empty".into());
    }
    label_value_error(name)
}

/// Why a label value is refused: at most 63 characters, empty or `[A-Za-z0-9]` at
/// both ends with `-_.` inside.
pub fn label_value_error(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some(format!(
            "must be at most 63 characters, not {}",
            value.len()
        ));
    }
    let ok_inside = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !value.bytes().all(ok_inside) {
        return Some("may hold only letters, digits, '-', '_' and '.'".into());
    }
    let bytes = value.as_bytes();
    let ends_ok = |b: Option<&u8>| b.is_none_or(|b| b.is_ascii_alphanumeric());
    if !ends_ok(bytes.first()) || !ends_ok(bytes.last()) {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_api_servers_rules() {
        assert_eq!(label_error("marie-executor-gpu-ocr"), None);
        assert!(label_error("Marie_Executor").is_some());
        assert!(label_error("-marie").is_some());
        assert!(label_error(&"a".repeat(64)).is_some());
        assert!(service_name_error("1marie").is_some());
        assert_eq!(subdomain_error("marie.example.com"), None);
        assert!(subdomain_error("marie..com").is_some());
        assert_eq!(port_name_error("tcp-cluster"), None);
        assert!(port_name_error("a-very-long-port-name").is_some());
        assert!(port_name_error("52000").is_some());
        assert!(port_name_error("tcp--x").is_some());
        assert_eq!(label_key_error("app.kubernetes.io/name"), None);
        assert!(label_key_error("app.kubernetes.io/").is_some());
        assert!(label_key_error("Bad_Prefix/name").is_some());
        assert_eq!(label_value_error(""), None);
        assert!(label_value_error("-x").is_some());
        assert!(label_value_error(&"v".repeat(64)).is_some());
    }
}
