use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use mongodb::ClientSession;
use mongodb::bson::doc;
use mongodb::options::FindOptions;
use vox_domain::user::{Role, User, UserChange};
use vox_domain::{Error, Result};
use vox_store::UserStore;

use crate::codec::{decode, encode, stored};
use crate::db::{MongoStore, Outcome, during, find_all, find_by_id, unique};

fn email_taken(email: &str) -> Error {
    Error::already_exists(format!("a user with email {email} already exists"))
}

async fn load(db: &MongoStore, s: &mut ClientSession, id: &str) -> Outcome<User> {
    let doc = find_by_id(&db.users, id, Some(s), "load user").await?.ok_or_else(|| Error::not_found("user", id))?;
    Ok(decode(doc)?)
}

/// Refuses a change that takes away the last active admin. Such a change first bumps the
/// `admins` guard document, so two of them racing (two admins demoting each other)
/// conflict and the second one sees the first.
async fn keep_an_admin(db: &MongoStore, s: &mut ClientSession, before: &User, after: Option<&User>) -> Outcome<()> {
    if !before.is_active_admin() || after.is_some_and(User::is_active_admin) {
        return Ok(());
    }
    db.counters
        .update_one(doc! { "_id": "admins" }, doc! { "$inc": { "revision": 1_i64 } })
        .upsert(true)
        .session(&mut *s)
        .await
        .map_err(during("guard admins"))?;
    let others = doc! { "_id": { "$ne": &before.id }, "role": Role::Admin.as_str(), "disabled": false };
    let others = db.users.count_documents(others).session(s).await.map_err(during("count admins"))?;
    if others == 0 {
        return Err(Error::precondition(format!(
            "{} is the last active admin; make another user admin first",
            before.email
        ))
        .into());
    }
    Ok(())
}

/// Replaces the user, with its token generation taken from the stored one (see
/// `User::stored_over`): the read and the write share the transaction, so a concurrent
/// change conflicts and retries instead of lowering the generation.
async fn replace(db: &MongoStore, s: &mut ClientSession, user: &User) -> Outcome<()> {
    let before = load(db, s, &user.id).await?;
    keep_an_admin(db, s, &before, Some(user)).await?;
    let stored = encode(&user.clone().stored_over(&before))?;
    db.users
        .replace_one(doc! { "_id": &user.id }, stored)
        .session(s)
        .await
        .map_err(unique("update user", || email_taken(&user.email)))?;
    Ok(())
}

/// Applies `change` to the user read in the same transaction, so a concurrent change
/// conflicts and retries against the newer user instead of being overwritten.
async fn change(
    db: &MongoStore,
    s: &mut ClientSession,
    id: &str,
    change: &UserChange,
    now: DateTime<Utc>,
) -> Outcome<User> {
    let before = load(db, s, id).await?;
    let after = change.applied_to(&before, now);
    keep_an_admin(db, s, &before, Some(&after)).await?;
    let (doc, after) = stored(&after)?;
    db.users.replace_one(doc! { "_id": id }, doc).session(s).await.map_err(during("change user"))?;
    Ok(after)
}

async fn remove(db: &MongoStore, s: &mut ClientSession, id: &str) -> Outcome<()> {
    let before = load(db, s, id).await?;
    keep_an_admin(db, s, &before, None).await?;
    db.users.delete_one(doc! { "_id": id }).session(s).await.map_err(during("delete user"))?;
    Ok(())
}

#[async_trait]
impl UserStore for MongoStore {
    async fn insert_user(&self, user: &User) -> Result<()> {
        self.users.insert_one(encode(user)?).await.map_err(unique("insert user", || email_taken(&user.email)))?;
        Ok(())
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        Ok(find_by_id(&self.users, id, None, "get user").await?.map(decode).transpose()?)
    }

    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let doc = self.users.find_one(doc! { "email": email }).await.map_err(during("get user by email"))?;
        doc.map(decode).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let oldest_first = FindOptions::builder().sort(doc! { "created_at": 1, "_id": 1 }).build();
        let docs = find_all(&self.users, doc! {}, oldest_first, None, "list users").await?;
        docs.into_iter().map(decode).collect()
    }

    async fn update_user(&self, user: &User) -> Result<()> {
        self.transaction("update user", (self, user), |s, &mut (db, user)| replace(db, s, user).boxed()).await
    }

    async fn change_user(&self, id: &str, edit: &UserChange, now: DateTime<Utc>) -> Result<User> {
        self.transaction("change user", (self, id, edit, now), |s, &mut (db, id, edit, now)| {
            change(db, s, id, edit, now).boxed()
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> Result<()> {
        self.transaction("delete user", (self, id), |s, &mut (db, id)| remove(db, s, id).boxed()).await
    }

    async fn count_users(&self) -> Result<u64> {
        self.users.count_documents(doc! {}).await.map_err(|e| during("count users")(e).into())
    }
}
