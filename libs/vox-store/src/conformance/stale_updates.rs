//! Updates built from a copy read earlier: they change what they edit and never undo a
//! change made in between (a node's lifecycle, a user's revoked sessions).

use chrono::{DateTime, Duration, Utc};
use vox_domain::ErrorCode;
use vox_domain::node::{DesiredState, NodeKind};
use vox_domain::user::{Role, User, UserChange};

use super::{audit, node, user};
use crate::Stores;

/// A rename built from a copy read before the node was disabled keeps it disabled.
pub async fn a_stale_node_update_keeps_the_lifecycle(s: &Stores, now: DateTime<Utc>) {
    let n = node(NodeKind::Dialler, None, now);
    s.nodes.insert_node(&n, &audit("node.register", &n.id, now)).await.unwrap();
    let stale = s.nodes.get_node(&n.id).await.unwrap().unwrap();
    let later = now + Duration::seconds(5);
    s.nodes
        .set_desired_state(
            &n.id,
            DesiredState::Active,
            DesiredState::Disabled,
            None,
            &audit("node.disable", &n.id, later),
        )
        .await
        .unwrap();

    let renamed =
        vox_domain::node::Node { name: "dialler-b".into(), updated_at: later + Duration::seconds(1), ..stale.clone() };
    s.nodes.update_node(&renamed, &audit("node.update", &n.id, later)).await.unwrap();
    let stored = s.nodes.get_node(&n.id).await.unwrap().unwrap();
    assert_eq!(stored.desired_state, DesiredState::Disabled, "the rename must not re-enable the node");
    assert_eq!(stored.name, "dialler-b");
    assert_eq!(stored.updated_at, renamed.updated_at);
}

/// Many renames from stale copies interleaved with lifecycle changes: every conditional
/// lifecycle step still finds the state the previous one left, and nothing is lost.
pub async fn concurrent_renames_keep_every_lifecycle_change(s: &Stores, now: DateTime<Utc>) {
    const RENAMERS: usize = 6;
    const RENAMES: usize = 4;
    const TOGGLES: usize = 8;
    let n = node(NodeKind::Dialler, None, now);
    s.nodes.insert_node(&n, &audit("node.register", &n.id, now)).await.unwrap();

    let renamers: Vec<_> = (0..RENAMERS)
        .map(|i| {
            let (s, stale) = (s.clone(), n.clone());
            tokio::spawn(async move {
                for j in 0..RENAMES {
                    let renamed = vox_domain::node::Node { name: format!("dialler-{i}-{j}"), ..stale.clone() };
                    s.nodes.update_node(&renamed, &audit("node.update", &stale.id, now)).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let lifecycle = {
        let (s, id) = (s.clone(), n.id.clone());
        tokio::spawn(async move {
            let steps = (0..TOGGLES)
                .flat_map(|_| {
                    [
                        (DesiredState::Active, DesiredState::Maintenance),
                        (DesiredState::Maintenance, DesiredState::Active),
                    ]
                })
                .chain([(DesiredState::Active, DesiredState::Disabled)]);
            for (from, to) in steps {
                s.nodes
                    .set_desired_state(&id, from, to, None, &audit("node.lifecycle", &id, now))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{} -> {}: a rename undid a lifecycle change: {e}", from.as_str(), to.as_str())
                    });
                tokio::task::yield_now().await;
            }
        })
    };
    for task in renamers {
        task.await.unwrap();
    }
    lifecycle.await.unwrap();

    let stored = s.nodes.get_node(&n.id).await.unwrap().unwrap();
    assert_eq!(stored.desired_state, DesiredState::Disabled);
    assert!(stored.name.starts_with("dialler-"), "one of the renames: {}", stored.name);
    let lines = s.audit.list_audit(Some(&n.id), 1000).await.unwrap().len();
    assert_eq!(lines, 1 + RENAMERS * RENAMES + 2 * TOGGLES + 1, "one audit line per change");
}

/// A new password, role or account status moves the stored token generation on, other
/// edits keep it, and a copy carrying an older generation never lowers it.
pub async fn session_ending_user_changes_move_the_token_generation(s: &Stores, now: DateTime<Utc>) {
    let admin = user("admin@vox.test", Role::Admin, now);
    s.users.insert_user(&admin).await.unwrap();
    let u = user("ops@vox.test", Role::Operator, now);
    s.users.insert_user(&u).await.unwrap();
    let generation = |id: String| async move { s.users.get_user(&id).await.unwrap().unwrap().token_generation };
    assert_eq!(generation(u.id.clone()).await, 0);

    let touched = User { updated_at: now + Duration::seconds(1), ..u.clone() };
    s.users.update_user(&touched).await.unwrap();
    assert_eq!(generation(u.id.clone()).await, 0, "an edit that ends no session");

    let changes: [fn(&mut User); 4] = [
        |u| u.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA".into(),
        |u| u.role = Role::Viewer,
        |u| u.disabled = true,
        |u| u.disabled = false,
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut next = s.users.get_user(&u.id).await.unwrap().unwrap();
        change(&mut next);
        s.users.update_user(&next).await.unwrap();
        assert_eq!(generation(u.id.clone()).await, i as u64 + 1, "change {i}");
    }

    // A copy claiming generation 0 with nothing session-ending keeps the stored one.
    let current = s.users.get_user(&u.id).await.unwrap().unwrap();
    let lowered = User { token_generation: 0, updated_at: now + Duration::seconds(9), ..current };
    s.users.update_user(&lowered).await.unwrap();
    assert_eq!(generation(u.id.clone()).await, 4);
    // The first copy, read before every change, puts the old password and role back:
    // that is a change too, so the generation moves on rather than back.
    s.users.update_user(&u).await.unwrap();
    assert_eq!(generation(u.id.clone()).await, 5);
}

/// A change applies to the stored user: a password reset after a disable keeps the
/// account disabled, and changes racing each other all land, each moving the token
/// generation on once.
pub async fn user_changes_keep_concurrent_changes(s: &Stores, now: DateTime<Utc>) {
    const RESETTERS: usize = 3;
    const RESETS: usize = 3;
    const TOGGLES: usize = 6;
    let admin = user("admin@vox.test", Role::Admin, now);
    s.users.insert_user(&admin).await.unwrap();
    let u = user("ops@vox.test", Role::Operator, now);
    s.users.insert_user(&u).await.unwrap();

    let disable = UserChange { disabled: Some(true), ..UserChange::default() };
    let disabled = s.users.change_user(&u.id, &disable, now + Duration::seconds(1)).await.unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.token_generation, 1);
    let reset = UserChange { password_hash: Some("$argon2id$reset".into()), ..UserChange::default() };
    let later = now + Duration::seconds(2);
    let after = s.users.change_user(&u.id, &reset, later).await.unwrap();
    assert_eq!(s.users.get_user(&u.id).await.unwrap().as_ref(), Some(&after), "returned as stored");
    assert!(after.disabled, "a password reset must not re-enable the account");
    assert_eq!(
        (after.password_hash.as_str(), after.role, after.token_generation),
        ("$argon2id$reset", Role::Operator, 2)
    );
    assert_eq!(after.updated_at, later);

    let missing = s.users.change_user("us_missing", &reset, later).await.unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
    let demote = UserChange { role: Some(Role::Viewer), ..UserChange::default() };
    let last = s.users.change_user(&admin.id, &demote, later).await.unwrap_err();
    assert_eq!(last.code, ErrorCode::FailedPrecondition, "the last admin is protected here too");

    let resetters: Vec<_> = (0..RESETTERS)
        .map(|i| {
            let (s, id) = (s.clone(), u.id.clone());
            tokio::spawn(async move {
                for j in 0..RESETS {
                    let reset =
                        UserChange { password_hash: Some(format!("$argon2id${i}-{j}")), ..UserChange::default() };
                    s.users.change_user(&id, &reset, later).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let toggler = {
        let (s, id) = (s.clone(), u.id.clone());
        tokio::spawn(async move {
            for k in 0..TOGGLES {
                // Starts disabled: enable, disable, … and ends disabled.
                let change = UserChange { disabled: Some(k % 2 == 1), ..UserChange::default() };
                s.users.change_user(&id, &change, later).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    for task in resetters {
        task.await.unwrap();
    }
    toggler.await.unwrap();
    let end = s.users.get_user(&u.id).await.unwrap().unwrap();
    assert!(end.disabled, "the last toggle disabled the account");
    assert!(end.password_hash.starts_with("$argon2id$") && end.password_hash != "$argon2id$reset");
    assert_eq!(end.token_generation, 2 + (RESETTERS * RESETS + TOGGLES) as u64, "every change moved it on once");
}
