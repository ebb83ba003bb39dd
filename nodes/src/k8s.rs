//! `marie k8s render` and `marie k8s check`: the node's configuration handed to the
//! renderer of marie-deploy, and its output written where the user asked.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Format, Toml};
use marie_deploy::check::{self, Options};
use marie_deploy::{Bounds, Cluster, Pool, Store, SupervisorBackend};

use crate::cli::{K8sCommand, RenderFormat};
use crate::config::check::STORE_URL;
use crate::config::{Config, ScaleBackendKind, StoreBackend};

/// Whether the text of a `cluster.toml` sets `store.url` (to a non-empty value).
fn sets_store_url(cluster_toml: &str) -> bool {
    Figment::from(Toml::string(cluster_toml))
        .find_value(STORE_URL)
        .is_ok_and(|url| url.as_str() != Some(""))
}

/// The renderer's input: `config` and the text of the file it was read from (empty
/// when the node runs on its defaults).
pub fn cluster(config: &Config, cluster_toml: String) -> Cluster {
    Cluster {
        store_url_in_file: sets_store_url(&cluster_toml),
        cluster_toml,
        kubernetes: config.kubernetes.clone(),
        cluster_port: config.cluster.port,
        http_port: config.http.port,
        drain_timeout_secs: config.node.drain_timeout_secs,
        shutdown_delay_secs: config.node.shutdown_delay_secs,
        max_payload_bytes: config.gateway.max_payload_bytes,
        long_poll_secs: crate::http::MAX_WAIT_SECS,
        store: match config.store.backend {
            StoreBackend::Sqlite => Store::Sqlite,
            StoreBackend::Memory => Store::Memory,
            StoreBackend::Postgres => Store::Postgres,
        },
        supervisor_backend: match config.supervisor.backend {
            ScaleBackendKind::Local => SupervisorBackend::Local,
            ScaleBackendKind::Process => SupervisorBackend::Process,
            ScaleBackendKind::External => SupervisorBackend::External,
            ScaleBackendKind::Kubernetes => SupervisorBackend::Kubernetes,
        },
        pools: config
            .executor
            .pools
            .iter()
            .map(|p| Pool {
                name: p.name.clone(),
                replicas: p.replicas,
                slots: p.slots,
                gpu: p.gpu,
                model: p.model.is_some(),
                autoscale: p.autoscale.as_ref().map(|a| Bounds {
                    min: a.min,
                    max: a.max,
                    scale_to_zero: a.scale_to_zero.enabled,
                    last_executor_delay_secs: a.scale_to_zero.last_executor_delay_secs,
                }),
                kubernetes: p.kubernetes.clone(),
            })
            .collect(),
    }
}

/// The files `--out DIR` writes for `config`, read from `config_path`: the objects
/// and kustomization.yaml, or compose.yaml.
pub fn render_files(
    config: &Config,
    config_path: Option<&Path>,
    format: RenderFormat,
) -> anyhow::Result<Vec<(String, String)>> {
    let text = match config_path {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => String::new(),
    };
    let cluster = cluster(config, text);
    Ok(match format {
        RenderFormat::Yaml => {
            let render = marie_deploy::render(&cluster)?;
            for warning in &render.warnings {
                eprintln!("warning: {warning}");
            }
            render.files()?
        }
        RenderFormat::Compose => vec![(
            "compose.yaml".into(),
            marie_deploy::compose::compose(&cluster)?,
        )],
    })
}

/// Files a previous render wrote into `dir`: those its kustomization.yaml lists.
fn previous_render(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(dir.join("kustomization.yaml")) else {
        return Vec::new();
    };
    marie_deploy::rendered_files(&text)
        .into_iter()
        .map(|name| dir.join(name))
        .collect()
}

fn write_files(dir: &Path, files: &[(String, String)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for stale in previous_render(dir) {
        if stale.exists() {
            std::fs::remove_file(&stale)
                .with_context(|| format!("cannot remove {}", stale.display()))?;
        }
    }
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Runs `marie k8s …`; `Ok(false)` when `check` found problems.
pub fn run(
    command: K8sCommand,
    mut config: Config,
    config_path: Option<&Path>,
) -> anyhow::Result<bool> {
    match command {
        K8sCommand::Render {
            out,
            format,
            namespace,
            image,
        } => {
            if let Some(namespace) = namespace {
                config.kubernetes.namespace = namespace;
            }
            if let Some(image) = image {
                config.kubernetes.image = image;
            }
            let files = render_files(&config, config_path, format)?;
            if out == Path::new("-") {
                let docs: Vec<&str> = files
                    .iter()
                    .filter(|(name, _)| {
                        name != "kustomization.yaml" && name != marie_deploy::ADAPTER_RULES_FILE
                    })
                    .map(|(_, content)| content.as_str())
                    .collect();
                print!("{}", docs.join("---\n"));
            } else {
                write_files(&out, &files)?;
                eprintln!("wrote {} files to {}", files.len(), out.display());
            }
            Ok(true)
        }
        K8sCommand::Check { dir, secrets } => {
            if !dir.is_dir() {
                bail!("{} is not a directory of manifests", dir.display());
            }
            let docs = check::load_dir(&dir)?;
            let findings = check::check(
                &docs,
                &Options {
                    external_secrets: secrets,
                },
            );
            for finding in &findings {
                println!("{finding}");
            }
            match findings.len() {
                0 => println!("{} objects checked, no problems", docs.len()),
                n => println!("{} objects checked, {n} problems", docs.len()),
            }
            Ok(findings.is_empty())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;
    use crate::config::tests::{load_in_jail, load_in_jail_with};

    /// Loads `path` as `marie k8s` does: no store is opened, so no URL is needed.
    fn load_to_render(path: &Path) -> anyhow::Result<Config> {
        let overrides = Overrides {
            opens_no_store: true,
            ..Overrides::default()
        };
        load_in_jail_with(path, &overrides, &[])
    }

    /// The committed renders and the configuration each comes from.
    const RENDERS: [(&str, &str); 2] = [
        ("cluster.toml", "k8s"),
        ("k8s/examples/full.toml", "k8s/examples/full"),
    ];

    #[test]
    fn the_committed_renders_match_the_renderer() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (config_file, dir) in RENDERS {
            let config_path = root.join(config_file);
            let config = load_to_render(&config_path)
                .unwrap_or_else(|e| panic!("{config_file} loads: {e:#}"));
            let files = render_files(&config, Some(&config_path), RenderFormat::Yaml)
                .unwrap_or_else(|e| panic!("{config_file} renders: {e:#}"));
            let regenerate = format!(
                "{dir}/ is out of date with the renderer: run `cargo run -p marie-node -- k8s render --config {config_file} --out {dir}` and commit the result"
            );
            for (name, content) in &files {
                let committed = std::fs::read_to_string(root.join(dir).join(name))
                    .unwrap_or_else(|_| panic!("{dir}/{name} is missing. {regenerate}"));
                assert!(&committed == content, "{dir}/{name} differs. {regenerate}");
            }
            let rendered: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
            for entry in std::fs::read_dir(root.join(dir)).expect("the render's folder") {
                let name = entry
                    .expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                let is_yaml = name.ends_with(".yaml");
                assert!(
                    !is_yaml || rendered.contains(&name.as_str()),
                    "{dir}/{name} is no longer rendered. {regenerate}"
                );
            }
        }
    }

    #[test]
    fn the_shipped_cluster_toml_renders_fixed_pools_with_their_replicas() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let config = load_in_jail(&root.join("cluster.toml")).expect("cluster.toml loads");
        let render = marie_deploy::render(&cluster(&config, String::new())).expect("renders");
        let extract = render
            .manifests
            .iter()
            .find(|m| m.name == "marie-executor-extract" && m.kind == "Deployment")
            .expect("the extract pool's Deployment");
        assert!(extract.yaml.contains("replicas: 1\n"), "{}", extract.yaml);
    }

    #[test]
    fn a_store_url_in_the_file_is_refused_and_one_from_the_environment_is_not_rendered() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("c.toml");
        let url = "postgres://marie:secret@db:5432/marie";
        std::fs::write(
            &path,
            format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"),
        )
        .expect("writes");
        let config = load_to_render(&path).expect("loads");
        let err = render_files(&config, Some(&path), RenderFormat::Yaml)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("Secret \"marie-store\""), "{err}");
        std::fs::write(&path, "[store]\nbackend = \"postgres\"\n").expect("writes");
        let vars = [("MARIE_STORE__URL", url)];
        let config = load_in_jail_with(&path, &Overrides::default(), &vars).expect("loads");
        let files = render_files(&config, Some(&path), RenderFormat::Yaml).expect("renders");
        assert!(files.iter().all(|(_, text)| !text.contains("secret@")));
        assert!(
            files
                .iter()
                .any(|(_, text)| text.contains("name: marie-store"))
        );
    }
}
