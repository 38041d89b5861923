//! The database layer: connections for both backends (SQLite, the embedded default with one
//! writer; PostgreSQL, production with many processes), migrations, the statement helper for
//! SQL written once for both, what a database error means ([`ErrorKind`]), and the lease queue
//! that the engine's timers and the mail outbox share ([`lease`]).

pub mod lease;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement, Value};

use crate::config::DatabaseSettings;

/// Opens a pool. For SQLite, creates the file's directory, uses a single connection so writes
/// never contend, and syncs the log at every commit (`synchronous = FULL`), so a webhook already
/// answered 2xx survives a power loss (group commit spreads that cost); for PostgreSQL, a session idle inside a transaction (a paused or hung
/// worker) is ended by the server so its locks cannot block others.
pub async fn connect(s: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let mut url = s.url.clone();
    let sqlite = url.starts_with("sqlite:");
    if sqlite {
        prepare_sqlite_path(&url)?;
        if !url.contains("mode=") {
            url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
        }
    }
    let mut opt = ConnectOptions::new(url);
    opt.connect_timeout(Duration::from_secs(s.connect_timeout_secs))
        .acquire_timeout(Duration::from_secs(s.connect_timeout_secs))
        .sqlx_logging(false)
        .max_connections(if sqlite { 1 } else { s.max_connections })
        .min_connections(if sqlite { 1 } else { 0 })
        .connect_lazy(!sqlite);
    if sqlite {
        opt.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
        });
    } else {
        opt.map_sqlx_postgres_opts(|o| o.options([("idle_in_transaction_session_timeout", "20s"), ("lock_timeout", "20s")]));
        opt.map_sqlx_postgres_pool_opts(|p| {
            p.after_connect(|_conn, _meta| {
                Box::pin(async {
                    nodelay::sweep();
                    Ok(())
                })
            })
        });
        // A connection idle for a while may have been cut (a database restart); a busy one is
        // known to work, so checking it on every acquire would cost a round trip each time.
        opt.test_before_acquire_if_idle_for(Duration::from_secs(5));
    }
    Database::connect(opt).await
}

/// The file of a SQLite database URL (`sqlite://data/firstcall.db?mode=rwc` → `data/firstcall.db`);
/// `None` for an in-memory database or another backend.
pub fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    let path = url.strip_prefix("sqlite:")?;
    let path = path.strip_prefix("//").unwrap_or(path);
    let path = path.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:").then(|| std::path::Path::new(path))
}

fn prepare_sqlite_path(url: &str) -> Result<(), DbErr> {
    let Some(path) = sqlite_file(url) else {
        return Ok(());
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", parent.display())))?;
    }
    Ok(())
}

/// Applies pending migrations; a no-op when the schema is current.
pub async fn migrate(db: &DatabaseConnection) -> Result<usize, DbErr> {
    let pending = Migrator::get_pending_migrations(db).await?.len();
    Migrator::up(db, None).await?;
    Ok(pending)
}

/// Whether every migration is applied.
pub async fn schema_is_current(db: &DatabaseConnection) -> Result<bool, DbErr> {
    Ok(Migrator::get_pending_migrations(db).await?.is_empty())
}

pub fn is_postgres(db: &impl ConnectionTrait) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// What a database error means for the caller, read from the driver's error (its kind and
/// SQLSTATE), never from its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The database cannot be reached or is going away: retry later (answer 503).
    Unavailable,
    /// Another transaction holds what this one needs in the opposite order, or changed it
    /// first (deadlock, serialization failure, SQLite busy): retry the transaction.
    Conflict,
    /// A unique constraint refused the row.
    Duplicate,
    /// Anything else: a problem with the statement or the data.
    Other,
}

/// Classifies a database error.
pub fn error_kind(e: &DbErr) -> ErrorKind {
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => ErrorKind::Unavailable,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => sqlx_kind(s),
        _ => ErrorKind::Other,
    }
}

fn sqlx_kind(e: &sea_orm::sqlx::Error) -> ErrorKind {
    use sea_orm::sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => ErrorKind::Unavailable,
        E::Database(d) => match d.code().as_deref() {
            // PostgreSQL: class 08 connection exception; 57P01-57P03 the server is shutting
            // down or starting; 53300 too many connections.
            Some(c) if c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "53300") => ErrorKind::Unavailable,
            // 40P01 deadlock, 40001 serialization failure, 55P03 lock not available.
            Some("40P01" | "40001" | "55P03") => ErrorKind::Conflict,
            // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
            Some(c) if d.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>().is_some() && is_sqlite_busy(c) => ErrorKind::Conflict,
            _ if d.is_unique_violation() => ErrorKind::Duplicate,
            _ => ErrorKind::Other,
        },
        _ => ErrorKind::Other,
    }
}

fn is_sqlite_busy(code: &str) -> bool {
    code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
}

/// Whether the database cannot be reached (the caller should retry later), as opposed to a
/// problem with the statement.
pub fn is_unavailable(e: &DbErr) -> bool {
    error_kind(e) == ErrorKind::Unavailable
}

/// Builds a statement from SQL written with `$1`-style parameters, for either backend.
pub fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Sqlite { sql.replace('$', "?") } else { sql.to_string() };
    Statement::from_sql_and_values(backend, sql, values)
}

/// `1,2,3` for an `IN (…)` list of ids (numbers only, so nothing to escape).
pub fn id_list(ids: &[i64]) -> String {
    ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// `'a','b'` for an `IN (…)` list of an enum's own names (states, kinds): constants of the code,
/// never text from outside, so they may go into the SQL as they are.
pub fn name_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(",")
}

/// Starts a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`), so two processes sharing the file wait for each other (busy timeout) instead
/// of failing when a read transaction tries to become a write one; on PostgreSQL it is a plain
/// `BEGIN`.
pub async fn begin_write(db: &sea_orm::DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::TransactionTrait;
    db.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// sqlx 0.9.0 leaves Nagle's algorithm on for its TCP connections (sqlx issue #4335, fixed
/// upstream but not yet released). A statement written in more than one piece (any large insert,
/// and everything over TLS, which writes 16 KiB records) then waits for the server's delayed ACK:
/// about 40 ms per statement, which capped webhook intake at a fraction of what the database
/// can do. Until a fixed sqlx is released, every new PostgreSQL connection sets `TCP_NODELAY`
/// on the process's TCP sockets (harmless for the others: HTTP and SMTP set it too).
mod nodelay {
    /// Sets `TCP_NODELAY` on every TCP socket this process holds.
    pub fn sweep() {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::BorrowedFd;
            let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
            for entry in entries.flatten() {
                let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
                // Only sockets (the link reads `socket:[inode]`); the descriptor may be closed by
                // another thread meanwhile, in which case the calls below fail and are ignored.
                if !std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")) {
                    continue;
                }
                // SAFETY: the descriptor is only borrowed for the duration of these calls and never
                // closed here; on a descriptor that is no longer a TCP socket they fail harmlessly.
                let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                let sock = socket2::SockRef::from(&fd);
                let tcp =
                    sock.r#type().is_ok_and(|t| t == socket2::Type::STREAM) && sock.local_addr().is_ok_and(|a| a.is_ipv4() || a.is_ipv6());
                if tcp {
                    let _ = sock.set_tcp_nodelay(true);
                }
            }
        }
    }
}
