//! The cluster cookie: from configuration, from a file, or generated into the data
//! directory for a node that listens on loopback only.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::Config;

/// The file `marie up` writes a generated cookie to, and where the CLI looks for it.
pub fn default_cookie_file(config: &Config) -> PathBuf {
    config.node.data_dir.join("cookie")
}

/// The cookie a node serves with. A node listening beyond loopback must be given one;
/// on loopback a missing cookie is generated into the data directory.
pub fn for_node(config: &Config) -> anyhow::Result<String> {
    if let Some(cookie) = configured(config)? {
        return Ok(cookie);
    }
    let path = default_cookie_file(config);
    if path.exists() {
        return read(&path);
    }
    if !config.cluster.host.is_loopback() {
        bail!(
            "a node listening on {} needs a cookie: set cluster.cookie_file, or MARIE_CLUSTER__COOKIE",
            config.cluster.host
        );
    }
    let cookie = uuid::Uuid::new_v4().simple().to_string();
    write_private(&path, &cookie)?;
    Ok(cookie)
}

/// The cookie a client uses: `--cookie-file`, configuration, or the file `marie up`
/// generated in the data directory.
pub fn for_client(config: &Config, cookie_file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(path) = cookie_file {
        return read(path);
    }
    if let Some(cookie) = configured(config)? {
        return Ok(cookie);
    }
    let path = default_cookie_file(config);
    read(&path).with_context(|| {
        format!(
            "no cookie given and none at {}: pass --cookie-file, set MARIE_CLUSTER__COOKIE, or run the CLI where `marie up` keeps its data dir (--data-dir)",
            path.display()
        )
    })
}

fn configured(config: &Config) -> anyhow::Result<Option<String>> {
    if let Some(cookie) = config.cluster.cookie.as_deref() {
        return Ok(Some(cookie.to_owned()));
    }
    config.cluster.cookie_file.as_deref().map(read).transpose()
}

fn read(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the cookie file {}", path.display()))?;
    let cookie = text.trim().to_owned();
    if cookie.is_empty() {
        bail!("the cookie file {} is empty", path.display());
    }
    Ok(cookie)
}

fn write_private(path: &Path, cookie: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write the cookie file {}", path.display()))?;
    file.write_all(cookie.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> Config {
        let mut config = Config::default();
        config.node.data_dir = dir.to_path_buf();
        config
    }

    #[test]
    fn loopback_generates_once_and_the_client_finds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_in(dir.path());
        let first = for_node(&config).expect("generated");
        assert_eq!(for_node(&config).expect("reused"), first);
        assert_eq!(for_client(&config, None).expect("found"), first);
    }

    #[test]
    fn a_public_listener_without_a_cookie_refuses_to_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = config_in(dir.path());
        config.cluster.host = "0.0.0.0".parse().expect("ip");
        let err = for_node(&config).unwrap_err();
        assert!(err.to_string().contains("needs a cookie"), "{err}");
    }

    #[test]
    fn a_client_without_any_cookie_is_told_where_to_look() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = for_client(&config_in(dir.path()), None).unwrap_err();
        assert!(format!("{err:#}").contains("--cookie-file"), "{err:#}");
    }
}
