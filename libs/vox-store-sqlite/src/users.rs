use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};
use vox_domain::user::{User, UserChange};
use vox_domain::{Error, Result};
use vox_store::UserStore;

use crate::db::{SqliteStore, doc, docs, is_unique_violation, ms, sql, to_doc};

fn load(tx: &Transaction<'_>, id: &str) -> Result<User> {
    doc(tx, "SELECT doc FROM users WHERE id = ?1", [id])?.ok_or_else(|| Error::not_found("user", id))
}

/// Refuses a change that takes away the last active admin.
fn keep_an_admin(tx: &Transaction<'_>, before: &User, after: Option<&User>) -> Result<()> {
    if !before.is_active_admin() || after.is_some_and(User::is_active_admin) {
        return Ok(());
    }
    let others: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM users WHERE id != ?1 AND json_extract(doc, '$.role') = 'admin' AND json_extract(doc, '$.disabled') = 0",
            [&before.id],
            |r| r.get(0),
        )
        .map_err(sql("count admins"))?;
    if others == 0 {
        return Err(Error::precondition(format!(
            "{} is the last active admin; make another user admin first",
            before.email
        )));
    }
    Ok(())
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &User) -> Result<()> {
        let u = user.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO users (id, email, created_ms, doc) VALUES (?1, ?2, ?3, ?4)",
                params![u.id, u.email, ms(u.created_at), to_doc(&u)?],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::already_exists(format!("a user with email {} already exists", u.email))
                } else {
                    sql("insert user")(e)
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let id = id.to_string();
        self.run(move |c| doc(c, "SELECT doc FROM users WHERE id = ?1", [id])).await
    }

    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_string();
        self.run(move |c| doc(c, "SELECT doc FROM users WHERE email = ?1", [email])).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.run(|c| docs(c, "SELECT doc FROM users ORDER BY created_ms, rowid", [])).await
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        let u = user.clone();
        self.tx(move |tx| {
            let before = load(tx, &u.id)?;
            keep_an_admin(tx, &before, Some(&u))?;
            let u = u.stored_over(&before);
            tx.execute("UPDATE users SET email = ?2, doc = ?3 WHERE id = ?1", params![u.id, u.email, to_doc(&u)?])
                .map_err(sql("update user"))?;
            Ok(())
        })
        .await
    }

    async fn change_user(&self, id: &str, change: &UserChange, now: DateTime<Utc>) -> Result<User> {
        let (id, change) = (id.to_string(), change.clone());
        self.tx(move |tx| {
            let before = load(tx, &id)?;
            let after = change.applied_to(&before, now);
            keep_an_admin(tx, &before, Some(&after))?;
            tx.execute("UPDATE users SET doc = ?2 WHERE id = ?1", params![after.id, to_doc(&after)?])
                .map_err(sql("change user"))?;
            Ok(after)
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.tx(move |tx| {
            let before = load(tx, &id)?;
            keep_an_admin(tx, &before, None)?;
            tx.execute("DELETE FROM users WHERE id = ?1", [&id]).map_err(sql("delete user"))?;
            Ok(())
        })
        .await
    }

    async fn count_users(&self) -> Result<u64> {
        self.run(|c| {
            c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(sql("count users"))
        })
        .await
    }
}
