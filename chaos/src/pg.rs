//! PostgreSQL for the fault tests: the final reads, a job history recorded by a trigger the
//! harness installs (which session claimed, released and completed each job, under which lease),
//! and a cluster of our own that can be stopped with `pg_ctl stop -m immediate`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};

pub async fn pool(url: &str) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new().max_connections(4).acquire_timeout(Duration::from_secs(10)).connect(url).await?)
}

pub async fn count(pool: &PgPool, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(pool).await?)
}

/// Records every change of a job row in `chaos_job_history`, with the session's
/// `application_name` (which process did it) and the database's clock at that moment
/// (`logged_at`); `lease_until` is the claim's lease as the claim wrote it. Installed after the
/// service created the schema.
pub async fn record_job_history(pool: &PgPool) -> anyhow::Result<()> {
    for sql in [
        "CREATE TABLE IF NOT EXISTS chaos_job_history (seq bigserial PRIMARY KEY, job_id bigint NOT NULL, event text NOT NULL, \
         kind text NOT NULL, call_id bigint, session text NOT NULL, token text, lease_until timestamptz, \
         logged_at timestamptz NOT NULL DEFAULT clock_timestamp())",
        "CREATE OR REPLACE FUNCTION chaos_job_history() RETURNS trigger LANGUAGE plpgsql AS $$ \
         DECLARE app text := current_setting('application_name'); \
         BEGIN \
           IF TG_OP = 'INSERT' THEN \
             INSERT INTO chaos_job_history (job_id, event, kind, call_id, session) VALUES (NEW.id, 'created', NEW.kind, NEW.subject_id, app); \
             RETURN NEW; \
           ELSIF TG_OP = 'UPDATE' THEN \
             IF NEW.lease_token IS NOT NULL AND NEW.lease_token IS DISTINCT FROM OLD.lease_token THEN \
               INSERT INTO chaos_job_history (job_id, event, kind, call_id, session, token, lease_until) \
                 VALUES (NEW.id, 'claimed', NEW.kind, NEW.subject_id, app, NEW.lease_token, NEW.lease_until); \
             ELSIF NEW.lease_token IS NULL AND OLD.lease_token IS NOT NULL THEN \
               INSERT INTO chaos_job_history (job_id, event, kind, call_id, session, token) \
                 VALUES (NEW.id, 'released', NEW.kind, NEW.subject_id, app, OLD.lease_token); \
             END IF; \
             RETURN NEW; \
           ELSE \
             INSERT INTO chaos_job_history (job_id, event, kind, call_id, session, token) \
               VALUES (OLD.id, 'completed', OLD.kind, OLD.subject_id, app, OLD.lease_token); \
             RETURN OLD; \
           END IF; \
         END $$",
        "DROP TRIGGER IF EXISTS chaos_job_history ON jobs",
        "CREATE TRIGGER chaos_job_history AFTER INSERT OR UPDATE OR DELETE ON jobs FOR EACH ROW EXECUTE FUNCTION chaos_job_history()",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(pool).await.with_context(|| format!("install job history: {sql}"))?;
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct JobEvent {
    pub job_id: i64,
    pub event: String,
    pub kind: String,
    pub session: String,
    pub token: Option<String>,
    /// The end of the lease a claim took (claims only).
    pub lease_until: Option<DateTime<Utc>>,
    /// When the trigger ran, on the database's clock: never a time the service wrote.
    pub logged_at: DateTime<Utc>,
}

pub async fn job_history(pool: &PgPool) -> anyhow::Result<Vec<JobEvent>> {
    type RowTuple = (i64, String, String, String, Option<String>, Option<DateTime<Utc>>, DateTime<Utc>);
    let rows: Vec<RowTuple> =
        sqlx::query_as("SELECT job_id, event, kind, session, token, lease_until, logged_at FROM chaos_job_history ORDER BY seq")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(job_id, event, kind, session, token, lease_until, logged_at)| JobEvent {
            job_id,
            event,
            kind,
            session,
            token,
            lease_until,
            logged_at,
        })
        .collect())
}

/// What the job history says about the engine's guarantees.
#[derive(Debug, Default)]
pub struct JobAudit {
    pub created: usize,
    pub completed: usize,
    /// A claim made while another session's lease on the job was still valid: two steps at once.
    pub overlapping_claims: Vec<String>,
    /// A completion by a session that did not make the job's latest claim: a stale commit.
    pub stale_completions: Vec<String>,
    /// A claim whose lease does not end the configured length after the claim on the database's
    /// clock: the lease was not set by that clock, so the overlap check cannot trust it.
    pub foreign_leases: Vec<String>,
    /// Jobs claimed again after a lease ran out unfinished (the first holder's fate unknown).
    pub reclaimed: usize,
    /// Completions per session.
    pub completed_by: HashMap<String, usize>,
    /// The latest claim of each job: (session, token).
    pub last_claim: HashMap<i64, (String, String)>,
}

impl JobAudit {
    /// A few of each finding, as failures.
    pub fn findings(&self) -> Vec<String> {
        [&self.overlapping_claims, &self.stale_completions, &self.foreign_leases]
            .into_iter()
            .flat_map(|f| f.iter().take(5).cloned())
            .collect()
    }
}

/// How much earlier than `logged_at + lease` a claim's lease may end: the trigger runs when the
/// claim statement ends, a little after the statement set the lease.
const CLAIM_STATEMENT_SLACK: TimeDelta = TimeDelta::seconds(2);

/// Audits a job history whose claims took leases of `lease`. Every time compared is the
/// database's clock: `logged_at`, and `lease_until`, which the claim sets on PostgreSQL as
/// `clock_timestamp() + lease` (`src/db/lease.rs`); a lease that does not match that is itself a
/// finding. A claim logged before the lease it replaced ended overlaps it: the claim's own check
/// ran no later than its trigger.
pub fn audit_jobs(history: &[JobEvent], lease: Duration) -> JobAudit {
    struct Lease {
        session: String,
        token: String,
        until: DateTime<Utc>,
    }
    let lease = TimeDelta::from_std(lease).unwrap_or(TimeDelta::MAX);
    let mut a = JobAudit::default();
    let mut current: HashMap<i64, Option<Lease>> = HashMap::new();
    for e in history {
        match e.event.as_str() {
            "created" => a.created += 1,
            "claimed" => {
                let (Some(token), Some(until)) = (e.token.clone(), e.lease_until) else { continue };
                if until > e.logged_at + lease || until < e.logged_at + lease - CLAIM_STATEMENT_SLACK {
                    a.foreign_leases.push(format!(
                        "job {} claimed by {} at {} with a lease until {until}, not {lease} later by the database's clock",
                        e.job_id, e.session, e.logged_at
                    ));
                }
                if let Some(Some(held)) = current.get(&e.job_id) {
                    if e.logged_at < held.until {
                        a.overlapping_claims.push(format!(
                            "job {} claimed by {} at {} while {} held it until {}",
                            e.job_id, e.session, e.logged_at, held.session, held.until
                        ));
                    } else {
                        a.reclaimed += 1;
                    }
                }
                a.last_claim.insert(e.job_id, (e.session.clone(), token.clone()));
                current.insert(e.job_id, Some(Lease { session: e.session.clone(), token, until }));
            }
            "released" => {
                current.insert(e.job_id, None);
            }
            "completed" => {
                a.completed += 1;
                *a.completed_by.entry(e.session.clone()).or_default() += 1;
                if let (Some(Some(held)), Some(token)) = (current.get(&e.job_id), &e.token)
                    && (held.session != e.session || &held.token != token)
                {
                    a.stale_completions.push(format!(
                        "job {} completed by {} under lease {token} while the latest claim was {}'s",
                        e.job_id, e.session, held.session
                    ));
                }
                current.remove(&e.job_id);
            }
            _ => {}
        }
    }
    a
}

/// A PostgreSQL cluster the test owns: initdb in a temporary directory, served on a free
/// loopback port, stopped and started at will.
pub struct OwnedCluster {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn pg_bin_dir() -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop().context("no /usr/lib/postgresql/*/bin/pg_ctl")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl OwnedCluster {
    pub fn create(port: u16) -> anyhow::Result<OwnedCluster> {
        let bin = pg_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("firstcall-chaos-pg").tempdir()?;
        let data = dir.path().join("data");
        if is_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
            run(Command::new("chown").arg("postgres").arg(dir.path()))?;
        }
        let c = OwnedCluster { bin, data, port, _dir: dir };
        c.run_pg("initdb", &["-D", &c.data(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])?;
        c.start()?;
        Ok(c)
    }

    fn data(&self) -> String {
        self.data.display().to_string()
    }

    fn run_pg(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let path = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        cmd.args(args).current_dir(self._dir.path());
        run(&mut cmd)
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn start(&self) -> anyhow::Result<()> {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c fsync=off -c max_connections=50",
            self.port,
            self._dir.path().display()
        );
        let log = self._dir.path().join("postgres.log").display().to_string();
        self.run_pg("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "-t", "30", "start"])
    }

    /// `pg_ctl stop -m immediate`: the server goes away at once, as in a crash.
    pub fn stop_immediate(&self) -> anyhow::Result<()> {
        self.run_pg("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"])
    }
}

impl Drop for OwnedCluster {
    fn drop(&mut self) {
        let _ = self.stop_immediate();
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const LEASE: Duration = Duration::from_secs(5);

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + s, 0).single().expect("time")
    }

    /// An event logged at `at_s` on the database's clock; a claim's lease ends `LEASE` later.
    fn event(job: i64, event: &str, session: &str, token: Option<&str>, at_s: i64) -> JobEvent {
        JobEvent {
            job_id: job,
            event: event.into(),
            kind: "call.start".into(),
            session: session.into(),
            token: token.map(String::from),
            lease_until: (event == "claimed").then(|| at(at_s + LEASE.as_secs() as i64)),
            logged_at: at(at_s),
        }
    }

    #[test]
    fn a_clean_history_has_no_findings() {
        let h =
            vec![event(1, "created", "http", None, 0), event(1, "claimed", "a", Some("t1"), 1), event(1, "completed", "a", Some("t1"), 2)];
        let a = audit_jobs(&h, LEASE);
        assert_eq!((a.created, a.completed, a.reclaimed), (1, 1, 0));
        assert!(a.findings().is_empty(), "{:?}", a.findings());
        assert_eq!(a.completed_by.get("a"), Some(&1));
    }

    #[test]
    fn a_claim_logged_inside_anothers_lease_is_an_overlap_and_after_it_a_reclaim() {
        let overlap = vec![event(1, "claimed", "a", Some("t1"), 1), event(1, "claimed", "b", Some("t2"), 5)];
        assert_eq!(audit_jobs(&overlap, LEASE).overlapping_claims.len(), 1);
        let reclaim = vec![event(1, "claimed", "a", Some("t1"), 1), event(1, "claimed", "b", Some("t2"), 7)];
        let a = audit_jobs(&reclaim, LEASE);
        assert!(a.overlapping_claims.is_empty());
        assert_eq!(a.reclaimed, 1);
        // A released lease (a failed step) may be claimed again at once.
        let released = vec![
            event(1, "claimed", "a", Some("t1"), 1),
            event(1, "released", "a", Some("t1"), 2),
            event(1, "claimed", "b", Some("t2"), 3),
        ];
        assert!(audit_jobs(&released, LEASE).overlapping_claims.is_empty());
    }

    #[test]
    fn a_lease_not_set_by_the_database_clock_is_a_finding() {
        // A lease ending later than the claim plus its length (a process clock running ahead)
        // would hide overlaps; one ending far sooner would invent them.
        for until_s in [1 + 5 + 3, 1 + 5 - 4] {
            let mut claim = event(1, "claimed", "a", Some("t1"), 1);
            claim.lease_until = Some(at(until_s));
            assert_eq!(audit_jobs(&[claim], LEASE).foreign_leases.len(), 1, "lease until {until_s}");
        }
    }

    #[test]
    fn a_completion_by_anyone_but_the_latest_claimant_is_stale() {
        let h = vec![
            event(1, "claimed", "a", Some("t1"), 1),
            event(1, "claimed", "b", Some("t2"), 7),
            event(1, "completed", "a", Some("t2"), 8),
        ];
        assert_eq!(audit_jobs(&h, LEASE).stale_completions.len(), 1);
    }
}
