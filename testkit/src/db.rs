//! Throwaway databases for tests: a uniquely named PostgreSQL database (created on the server
//! at `FIRSTCALL_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`) or a
//! SQLite file in a temporary directory. `FIRSTCALL_TEST_DB=sqlite` picks SQLite. The database
//! is dropped when the value is dropped.

use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// The backend the test run asks for.
    pub fn from_env() -> Backend {
        match std::env::var("FIRSTCALL_TEST_DB").as_deref() {
            Ok("sqlite") => Backend::Sqlite,
            _ => Backend::Postgres,
        }
    }
}

pub struct TestDb {
    backend: Backend,
    name: String,
    url: String,
    admin_url: String,
    _dir: Option<tempfile::TempDir>,
}

pub fn admin_url() -> String {
    std::env::var("FIRSTCALL_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDb {
    pub async fn create() -> TestDb {
        match Backend::from_env() {
            Backend::Postgres => Self::postgres().await,
            Backend::Sqlite => Self::sqlite(),
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = admin_url();
        let name = format!("firstcall_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin} (is it running?): {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut conn).await.expect("create test database");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
        TestDb { backend: Backend::Postgres, url: format!("{base}/{name}"), name, admin_url: admin, _dir: None }
    }

    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("firstcall.db");
        TestDb {
            backend: Backend::Sqlite,
            name: path.display().to_string(),
            url: format!("sqlite://{}", path.display()),
            admin_url: String::new(),
            _dir: Some(dir),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// Whether a PostgreSQL database of this name exists.
pub async fn postgres_database_exists(name: &str) -> bool {
    let mut conn = sqlx::PgConnection::connect(&admin_url()).await.expect("admin connection");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .expect("query pg_database");
    n > 0
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.backend != Backend::Postgres {
            return;
        }
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside any runtime guarantee: use a private one on a plain thread.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).execute(&mut conn).await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

/// Cuts a running test database off (PostgreSQL): with `block` true, new connections are
/// refused and existing ones terminated, as when the server goes away; with `false`, it is
/// reachable again.
pub async fn terminate_connections(name: &str, block: bool) {
    let mut conn = sqlx::PgConnection::connect(&admin_url()).await.expect("admin connection");
    let allow = if block { "false" } else { "true" };
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {allow}")))
        .execute(&mut conn)
        .await
        .expect("alter database");
    if block {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(name)
            .execute(&mut conn)
            .await
            .expect("terminate");
    }
}
