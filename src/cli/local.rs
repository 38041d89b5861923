//! Development credentials for the embedded default, so a fresh clone works at once: when
//! `serve` runs with no API token or generic webhook secret configured, it generates them once
//! and keeps them in a file beside the SQLite database (readable by its owner alone), and
//! `firstcall demo` reads them from there. This runs only on loopback with SQLite: a service
//! other machines can reach, or one on PostgreSQL (production), must be given its own secrets.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::secrets::SecretList;
use crate::config::{Config, Settings};

/// The file's name, beside the database file.
const FILE_NAME: &str = "dev-credentials.json";

/// What `serve` generated for this machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevCredentials {
    /// Says what the file is, for whoever opens it.
    pub note: String,
    /// Logs in to the dashboard; the bearer token of the API.
    pub api_token: String,
    /// Signs `/webhooks/generic` requests.
    pub generic_webhook_secret: String,
}

/// Why development credentials may not be used with these settings; `None` when they may.
pub fn refusal(settings: &Settings) -> Option<String> {
    let host = settings.http.host.trim();
    let loopback = host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Some(format!(
            "firstcall listens on {host} (http.host), which other machines may reach; development credentials are for 127.0.0.1 only"
        ));
    }
    if !settings.database.url.starts_with("sqlite:") {
        return Some("firstcall uses PostgreSQL (database.url), the production backend; development credentials are for the embedded SQLite database only".into());
    }
    if crate::db::sqlite_file(&settings.database.url).is_none() {
        return Some(
            "the SQLite database is in memory (database.url), so there is no data directory to keep development credentials in".into(),
        );
    }
    None
}

/// Where the credentials are kept for these settings: beside the database file.
pub fn path(settings: &Settings) -> Option<PathBuf> {
    let db = crate::db::sqlite_file(&settings.database.url)?;
    Some(db.parent().unwrap_or(Path::new("")).join(FILE_NAME))
}

/// The credentials `serve` generated, when allowed and present.
pub fn read(settings: &Settings) -> Result<DevCredentials, String> {
    if let Some(why) = refusal(settings) {
        return Err(why);
    }
    let path = path(settings).ok_or("no data directory")?;
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{} does not exist: start the service first (`firstcall serve` writes it when no API token is configured)",
            path.display()
        ),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
    parse(&path, &text)
}

fn parse(path: &Path, text: &str) -> Result<DevCredentials, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("{} is not what `firstcall serve` wrote ({e}); delete it and restart serve", path.display()))
}

/// What [`apply`] did.
#[derive(Debug)]
pub enum Applied {
    /// An API token and a generic webhook secret are configured: nothing to do.
    NotNeeded,
    /// The missing ones were taken from (or generated into) the file at this path.
    Used(PathBuf),
    /// Something is missing and development credentials may not be used, for this reason.
    Refused(String),
}

/// At `serve`'s start: fills in a missing API token and generic webhook secret from the
/// development credentials (generating them on first use), where they are allowed.
pub fn apply(config: &mut Config) -> Result<Applied, String> {
    let settings = &mut config.settings;
    let (no_token, no_secret) = (settings.api.tokens.is_empty(), settings.webhooks.generic.secrets.is_empty());
    if !no_token && !no_secret {
        return Ok(Applied::NotNeeded);
    }
    if let Some(why) = refusal(settings) {
        return Ok(Applied::Refused(why));
    }
    let path = path(settings).ok_or("no data directory")?;
    let credentials = load_or_create(&path)?;
    if no_token {
        settings.api.tokens = SecretList::One(credentials.api_token);
    }
    if no_secret {
        settings.webhooks.generic.secrets = SecretList::One(credentials.generic_webhook_secret);
    }
    config.dev_credentials = Some(path.clone());
    Ok(Applied::Used(path))
}

/// The file's credentials, generating them when the file does not exist yet. The file is
/// created whole or not at all, readable by its owner alone; two processes starting at once
/// end up with the same credentials.
fn load_or_create(path: &Path) -> Result<DevCredentials, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let fresh = DevCredentials {
        note: "Generated by `firstcall serve` for development on this machine (127.0.0.1, SQLite). Never use these in production: \
               set FIRSTCALL__API__TOKENS and FIRSTCALL__WEBHOOKS__GENERIC__SECRETS instead."
            .into(),
        api_token: format!("dev-{}", random_hex()),
        generic_webhook_secret: format!("dev-{}", random_hex()),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(serde_json::to_string_pretty(&fresh).expect("plain strings serialize").as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", tmp.display()));
    }
    // A hard link fails when the file exists: the first process to start wins, the others read it.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(fresh),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            parse(path, &text)
        }
        Err(e) => Err(format!("cannot write {}: {e}", path.display())),
    }
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 24]>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSource;

    fn config(overrides: &[(&str, &str)]) -> Config {
        let source = ConfigSource { dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("config"), env_name: None, use_env: false };
        let pairs: Vec<(&str, serde_json::Value)> = overrides.iter().map(|(k, v)| (*k, serde_json::json!(v))).collect();
        source.load_with(source.figment().merge(Config::overrides(&pairs))).unwrap()
    }

    #[test]
    fn only_loopback_with_a_sqlite_file_may_use_development_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}/firstcall.db", dir.path().display());
        for host in ["127.0.0.1", "localhost", "::1", "127.0.0.2"] {
            assert!(refusal(&config(&[("http.host", host), ("database.url", &db)]).settings).is_none(), "{host}");
        }
        for host in ["0.0.0.0", "::", "192.168.1.20", "firstcall.internal"] {
            let why = refusal(&config(&[("http.host", host), ("database.url", &db)]).settings).expect(host);
            assert!(why.contains(host) && why.contains("http.host"), "{why}");
        }
        let pg = refusal(&config(&[("database.url", "postgres://postgres@127.0.0.1/firstcall")]).settings).unwrap();
        assert!(pg.contains("PostgreSQL"), "{pg}");
        assert!(refusal(&config(&[("database.url", "sqlite::memory:")]).settings).unwrap().contains("in memory"));
    }

    #[test]
    fn credentials_are_generated_once_kept_private_and_fill_only_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}/data/firstcall.db", dir.path().display());
        let mut first = config(&[("database.url", &db)]);
        let Applied::Used(path) = apply(&mut first).unwrap() else { panic!("nothing configured: credentials are used") };
        assert_eq!(path, dir.path().join("data").join(FILE_NAME));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "owner only");
        }
        let written = read(&first.settings).unwrap();
        let mut second = config(&[("database.url", &db)]);
        apply(&mut second).unwrap();
        assert_eq!(read(&second.settings).unwrap().api_token, written.api_token, "the same token after a restart");
        let tokens = second.settings.api.tokens.secrets().unwrap();
        assert!(tokens[0].value.as_ref().unwrap().matches(written.api_token.as_bytes()));
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary file left");

        // A configured token stays; only the missing webhook secret is filled in.
        let mut own = config(&[("database.url", &db), ("api.tokens", "my-own-token-123")]);
        apply(&mut own).unwrap();
        assert!(own.settings.api.tokens.secrets().unwrap()[0].value.as_ref().unwrap().matches(b"my-own-token-123"));
        assert!(!own.settings.webhooks.generic.secrets.is_empty());
        let mut both = config(&[("database.url", &db), ("api.tokens", "my-own-token-123"), ("webhooks.generic.secrets", "my-secret-123")]);
        assert!(matches!(apply(&mut both).unwrap(), Applied::NotNeeded));
        assert!(both.dev_credentials.is_none());

        // Refused: nothing is generated, nothing filled in.
        let other = tempfile::tempdir().unwrap();
        let mut public = config(&[("http.host", "0.0.0.0"), ("database.url", &format!("sqlite://{}/f.db", other.path().display()))]);
        assert!(matches!(apply(&mut public).unwrap(), Applied::Refused(_)));
        assert!(public.settings.api.tokens.is_empty() && public.dev_credentials.is_none());
        assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 0, "no file written");
        assert!(read(&public.settings).unwrap_err().contains("0.0.0.0"));
    }
}
