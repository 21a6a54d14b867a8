//! The bench database: its name, its URL and its creation and removal.

use anyhow::{ensure, Context, Result};
use sqlx::{Connection, PgConnection};

/// Accepts the names `--database` may take (never `postgres`).
pub(crate) fn validate_db_name(name: &str) -> Result<()> {
    ensure!(
        !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name != "postgres",
        "--database: `{name}` must be 1-63 characters of a-z, 0-9 and _ (not postgres)"
    );
    Ok(())
}

/// `postgres://user@host:5432/db?x=y` → (`postgres://user@host:5432`, `?x=y`).
pub(crate) fn split_pg_url(url: &str) -> Result<(String, String)> {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = main
        .find("://")
        .with_context(|| format!("DATABASE_URL `{url}` is not a URL"))?
        + 3;
    let base = match main[scheme_end..].find('/') {
        Some(i) => &main[..scheme_end + i],
        None => main,
    };
    Ok((base.to_string(), query))
}

/// Drops database `name` if it exists and creates it empty.
pub(crate) async fn recreate_database(admin_url: &str, name: &str) -> Result<()> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to {admin_url}"))?;
    sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Drops database `name` if it exists.
pub(crate) async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let mut conn = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_url_split() {
        assert_eq!(
            split_pg_url("postgres://postgres@127.0.0.1:5432/conveyor_test?sslmode=disable")
                .unwrap(),
            (
                "postgres://postgres@127.0.0.1:5432".to_string(),
                "?sslmode=disable".to_string()
            )
        );
        assert_eq!(
            split_pg_url("postgres://postgres@127.0.0.1:5432")
                .unwrap()
                .0,
            "postgres://postgres@127.0.0.1:5432"
        );
    }
}
