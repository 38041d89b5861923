//! The `firstcall` command line: `serve`, `worker`, `migrate`, `config check`, `recap`, `demo`.

mod demo;
mod local;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::clock::SystemClock;
use crate::config::{Config, ConfigSource};
use crate::domain::Timezone;
use crate::startup::{Application, Services};

#[derive(Parser, Debug)]
#[command(name = "firstcall", version, about = "Makes sure the first sales call after the order happens, on time, with the recap in hand.")]
pub struct Cli {
    /// Directory holding default.toml, $FIRSTCALL_ENV.toml and templates/.
    #[arg(long, global = true, env = "FIRSTCALL_CONFIG_DIR", default_value = "config")]
    pub config_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve HTTP (webhooks, API, pages) and run the engine and mailer.
    Serve,
    /// Run only the engine and mailer (no HTTP); several may share one PostgreSQL database.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check and preview configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the recap for a deal's call from the database, as the rep would get it.
    Recap {
        /// The CRM: generic, hubspot, pipedrive or salesforce.
        #[arg(long)]
        source: String,
        /// The CRM deal id.
        #[arg(long)]
        deal: String,
        #[arg(long, value_enum, default_value = "text")]
        format: RecapFormat,
    },
    /// Against a `serve` running here on the embedded default (loopback, SQLite): store a sample
    /// deal, send a signed order for it through the webhook, wait for the recap email, and print
    /// where to read it, the rep's call page link and how to open the dashboard.
    Demo {
        /// Seconds to wait for the recap email.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate configuration and templates, and preview each schedule for an order placed at
    /// TIME by a rep in ZONE: when the call is due, when reminders fire, when it escalates.
    Check {
        /// When the order is placed (RFC 3339, e.g. 2026-11-23T09:00:00Z); default now.
        #[arg(long)]
        at: Option<String>,
        /// The rep's timezone (IANA name); default `defaults.timezone`.
        #[arg(long)]
        tz: Option<String>,
        /// Reminders to list per schedule.
        #[arg(long, default_value_t = 5)]
        reminders: usize,
        /// Also compare with the configuration that runs: the newest one a `serve` or `worker`
        /// recorded in the database (`database.url`), key by key.
        #[arg(long)]
        against_running: bool,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecapFormat {
    Text,
    Html,
    Json,
}

pub async fn run(cli: Cli) -> ExitCode {
    let source = ConfigSource { dir: cli.config_dir.clone(), ..ConfigSource::default() };
    let config = match source.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if !matches!(cli.command, Command::Config { .. } | Command::Recap { .. } | Command::Demo { .. }) {
        crate::telemetry::init(&config.settings.log);
    }
    let result = match cli.command {
        Command::Serve => serve(&source, config, Services { http: true, engine: true, mailer: true }).await,
        Command::Worker => serve(&source, config, Services { http: false, engine: true, mailer: true }).await,
        Command::Migrate => migrate(config).await,
        Command::Config { command: ConfigCommand::Check { at, tz, reminders, against_running } } => {
            match config_check(&config, at.as_deref(), tz.as_deref(), reminders) {
                Ok(report) => {
                    print!("{report}");
                    if against_running {
                        compare_with_running(&config, crate::clock::Clock::now(&SystemClock)).await.map(|changes| print!("{changes}"))
                    } else {
                        Ok(())
                    }
                }
                Err(e) => {
                    eprintln!("configuration error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Command::Recap { source, deal, format } => recap(config, &source, &deal, format).await,
        Command::Demo { wait } => demo::run(&config, std::time::Duration::from_secs(wait)).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(source: &ConfigSource, mut config: Config, mut services: Services) -> anyhow::Result<()> {
    services.engine &= config.settings.engine.enabled || !services.http;
    // Edits of config/ are loaded as at start-up and compared with the settings as written:
    // development credentials are this machine's, not an edit.
    let started_with = config.settings.clone();
    let reload_from = source.clone();
    let dev = if services.http {
        local::apply(&mut config).map_err(|e| anyhow::anyhow!("development credentials: {e}"))?
    } else {
        local::Applied::NotNeeded
    };
    let app =
        Application::build(config, Arc::new(SystemClock), services).await?.reload_with(Arc::new(move || reload_from.load()), &started_with);
    if services.http {
        let s = &app.state.config.settings;
        let address = format!("http://{}:{}", s.http.host, app.port());
        tracing::info!(address = %address, database = %crate::startup::redact_url(&s.database.url), mail = ?s.mail.transport, "firstcall serving");
        announce_next_steps(&app.state.config, &dev);
    } else {
        tracing::info!("firstcall worker running");
    }
    app.run_until_stopped().await
}

/// What to do next, in the start-up log: on the embedded default, try the demo; without
/// secrets elsewhere, which variables to set.
fn announce_next_steps(config: &Config, dev: &local::Applied) {
    let s = &config.settings;
    let dashboard = format!("{}/", s.http.public_url.trim_end_matches('/'));
    match dev {
        local::Applied::Used(path) => tracing::info!(
            credentials = %path.display(),
            "running with development credentials for this machine (no FIRSTCALL__API__TOKENS or FIRSTCALL__WEBHOOKS__GENERIC__SECRETS set). \
             Next: run `cargo run --release -- demo` (or `firstcall demo`) in another terminal, from this directory: it sends a sample won deal \
             through the webhook and prints where to read the recap, the call page and how to log in to the dashboard at {dashboard}"
        ),
        local::Applied::Refused(why) if s.api.tokens.is_empty() => tracing::warn!(
            "no API token is configured, so the API and the dashboard refuse everyone: set FIRSTCALL__API__TOKENS to a long random value \
             (e.g. `openssl rand -hex 32`) and restart. No development token was generated: {why}"
        ),
        _ => {}
    }
    let webhooks = &s.webhooks;
    if webhooks.generic.secrets.is_empty()
        && webhooks.hubspot.client_secrets.is_empty()
        && webhooks.pipedrive.basic_auth.is_empty()
        && webhooks.salesforce.organization_ids.is_empty()
    {
        tracing::warn!(
            "no CRM can send orders yet: every webhook answers 401. Set the secret of the CRM you connect \
             (FIRSTCALL__WEBHOOKS__GENERIC__SECRETS, __HUBSPOT__CLIENT_SECRETS, __PIPEDRIVE__BASIC_AUTH, or webhooks.salesforce.organization_ids); \
             see \"Connecting your CRM\" in the README"
        );
    }
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let db = crate::db::connect(&config.settings.database).await?;
    let applied = crate::db::migrate(&db).await?;
    println!(
        "{}",
        if applied == 0 { "schema is up to date; nothing to do".to_string() } else { format!("applied {applied} migration(s)") }
    );
    Ok(())
}

/// Validates templates and renders the schedule preview (also shown on the dashboard).
pub fn config_check(config: &Config, at: Option<&str>, tz: Option<&str>, reminders: usize) -> anyhow::Result<String> {
    let templates = crate::mail::templates::Templates::load_checked(&config.templates_dir())?;
    let at = match at {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|_| anyhow::anyhow!("--at: '{s}' is not an RFC 3339 time such as 2026-11-23T09:00:00Z"))?
            .with_timezone(&Utc),
        None => crate::clock::Clock::now(&SystemClock),
    };
    let tz = match tz {
        Some(z) => Timezone::parse(z).map_err(|e| anyhow::anyhow!("--tz: {e}"))?,
        None => config.settings.defaults.timezone,
    };
    let s = &config.settings;
    let mut out = String::new();
    out.push_str("configuration OK\n");
    out.push_str(&format!("  listen:    {}:{} (links point to {})\n", s.http.host, s.http.port, s.http.public_url));
    out.push_str(&format!("  database:  {}\n", crate::startup::redact_url(&s.database.url)));
    out.push_str(&format!(
        "  mail:      {:?}{}\n",
        s.mail.transport,
        if s.mail.transport == crate::config::MailTransportKind::Smtp {
            format!(" via {}:{}", s.mail.smtp.host, s.mail.smtp.port)
        } else {
            format!(" into {}/", s.mail.outbox_dir)
        }
    ));
    out.push_str(&format!("  templates: {} checked\n", templates.origins().len()));
    out.push_str(&format!("  retention: {}\n", retention_summary(config)));
    out.push('\n');
    out.push_str(&crate::workflow::preview::render(config, at, tz, reminders));
    Ok(out)
}

/// `config check --against-running`: what this configuration changes against the one that
/// runs, as recorded in the database by the newest `serve` or `worker` to load one: each
/// schedule's changed keys, before and after, whether the templates changed, and the open calls
/// whose due time, next reminder or next escalation would move at `now` (the first 50, and a count).
pub async fn compare_with_running(config: &Config, now: DateTime<Utc>) -> anyhow::Result<String> {
    let templates = crate::mail::templates::Templates::load(&config.templates_dir())?;
    let version = config.version(templates.digest());
    let url = crate::startup::redact_url(&config.settings.database.url);
    if let Some(file) = crate::db::sqlite_file(&config.settings.database.url)
        && !file.exists()
    {
        anyhow::bail!("--against-running: no database at {} (database.url): nothing runs there yet", file.display());
    }
    let db =
        crate::db::connect(&config.settings.database).await.map_err(|e| anyhow::anyhow!("cannot connect to the database at {url}: {e}"))?;
    let newest = crate::config_versions::newest_running(&db)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read what runs from the database at {url} (is its schema current? firstcall migrate): {e}"))?;
    let Some(load) = newest else {
        return Ok(format!("\nagainst what runs: no serve or worker has recorded its configuration in the database at {url} yet\n"));
    };
    let running = crate::config_versions::recorded(&db, &load.version)
        .await?
        .ok_or_else(|| anyhow::anyhow!("version {} was loaded but its schedules are not on record", load.version))?;
    let mut out = format!(
        "\nagainst what runs: version {} (loaded {} by {} {})\n  this edit: version {version}\n",
        load.version,
        load.loaded_at.format("%Y-%m-%d %H:%M:%S UTC"),
        load.role,
        load.instance_id
    );
    if version == load.version {
        out.push_str("  no change: these schedules and templates are what runs\n");
        return Ok(out);
    }
    out.push_str(&crate::workflow::preview::schedule_changes_text(&running.schedules, config));
    out.push_str(if hex::encode(templates.digest()) == running.templates_digest {
        "  templates: unchanged\n"
    } else {
        "  templates: changed (each one rendered above)\n"
    });
    out.push_str(
        &crate::workflow::preview::moves_text(&db, &running.schedules, config, now, crate::workflow::preview::MOVES_LISTED, None).await?,
    );
    Ok(out)
}

/// `[retention]` in one line, with the ages that apply.
fn retention_summary(config: &Config) -> String {
    let retention = crate::retention::Retention::new(config);
    if !retention.settings.enabled() {
        return "keeps everything".into();
    }
    let ages = retention.ages();
    let age = |days: Option<u32>| days.map_or("never".to_string(), |d| format!("after {d} days"));
    format!(
        "email texts {}, stored events {}, dead timers {}, never-won orders {}; {} rows of each per run",
        age(ages.email_bodies),
        age(ages.events),
        age(ages.dead_jobs),
        age(ages.orders),
        retention.settings.batch_size
    )
}

async fn recap(config: Config, source: &str, deal: &str, format: RecapFormat) -> anyhow::Result<()> {
    let app = Application::build(config, Arc::new(SystemClock), Services { http: false, engine: false, mailer: false }).await?;
    let state = &app.state;
    let source = crate::domain::Source::parse(source)?;
    let recap = crate::workflow::compose::recap_for_deal(&state.db, &state.first_call.get(), source, deal)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no call for {source}/{deal}: firstcall has not received an order for this deal"))?;
    let templates = &state.first_call.get().composer.templates;
    let out = match format {
        RecapFormat::Json => serde_json::to_string_pretty(&recap)?,
        RecapFormat::Html => templates.render_recap_html_fragment(&recap)?,
        RecapFormat::Text => templates.render_recap_text(&recap)?,
    };
    println!("{out}");
    Ok(())
}
