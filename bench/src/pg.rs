//! The PostgreSQL server under test: a fresh database per figure (created from a template when
//! one is given), connections, and a description of the server for the report.

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};

#[derive(Debug, Clone)]
pub struct Server {
    /// A URL of the maintenance database (`.../postgres`), used to create and drop databases.
    pub admin_url: String,
}

impl Server {
    /// The URL of database `name` on the same server, same credentials.
    pub fn url(&self, name: &str) -> String {
        let u = self.admin_url.as_str();
        let host_start = u.find("://").map(|i| i + 3).unwrap_or(0);
        match u[host_start..].find('/') {
            Some(i) => {
                let (base, rest) = u.split_at(host_start + i);
                let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
                format!("{base}/{name}{query}")
            }
            None => format!("{u}/{name}"),
        }
    }

    async fn admin(&self) -> anyhow::Result<PgConnection> {
        Ok(PgConnection::connect(&self.admin_url).await?)
    }

    /// Drops `name` if it exists and creates it anew, empty or as a copy of `template`.
    pub async fn recreate(&self, name: &str, template: Option<&str>) -> anyhow::Result<String> {
        let mut c = self.admin().await?;
        c.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).await?;
        let from = template.map(|t| format!(" TEMPLATE \"{t}\"")).unwrap_or_default();
        c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"{from}"))).await?;
        Ok(self.url(name))
    }

    pub async fn drop(&self, name: &str) -> anyhow::Result<()> {
        let mut c = self.admin().await?;
        c.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).await?;
        Ok(())
    }

    /// Version and the settings that decide write throughput.
    pub async fn describe(&self) -> anyhow::Result<String> {
        let mut c = self.admin().await?;
        let mut parts = vec![sqlx::query_scalar::<_, String>("SELECT version()").fetch_one(&mut c).await?];
        for s in ["fsync", "synchronous_commit", "wal_sync_method", "shared_buffers", "max_connections"] {
            let v: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT current_setting('{s}')"))).fetch_one(&mut c).await?;
            parts.push(format!("{s}={v}"));
        }
        Ok(parts.join(", "))
    }

    pub async fn fsync_on(&self) -> anyhow::Result<bool> {
        let mut c = self.admin().await?;
        Ok(sqlx::query_scalar::<_, String>("SELECT current_setting('fsync')").fetch_one(&mut c).await? == "on")
    }
}

/// A small pool for the bench's own queries.
pub async fn pool(url: &str) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new().max_connections(4).connect(url).await?)
}
