//! The people who sign in to the pages, and what each may see: a rep their own calls and
//! promises (and the calls they cover for an absent colleague); a manager also their team's, down
//! the rep directory's manager chain at any depth; sales ops (the `[sign_in] sales_ops`
//! addresses) everything. Who someone is is worked out again on each request, so a change of the
//! directory or the list takes effect at once.

use std::collections::BTreeSet;

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};

use crate::config::SignInSettings;
use crate::domain::EmailAddress;

pub mod links;

/// How far down a manager chain a team is followed; a directory deeper than this is cut there.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Rep,
    /// A rep with reps under them in the directory.
    Manager,
    SalesOps,
}

impl Role {
    pub fn label(&self) -> &'static str {
        match self {
            Role::Rep => "rep",
            Role::Manager => "manager",
            Role::SalesOps => "sales ops",
        }
    }
}

/// Someone signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub email: EmailAddress,
    /// From the rep directory, when it has them.
    pub name: Option<String>,
    pub role: Role,
    /// The reps under them, down the manager chain (not themselves).
    pub team: BTreeSet<String>,
}

impl Person {
    /// Sales ops see and steer every call.
    pub fn sees_all(&self) -> bool {
        self.role == Role::SalesOps
    }

    /// Whether they may see (and act on) a call of `rep` that `covered_by` may be covering.
    pub fn may_see(&self, rep: &str, covered_by: Option<&str>) -> bool {
        self.sees_all() || self.email.as_str() == rep || covered_by == Some(self.email.as_str()) || self.team.contains(rep)
    }

    /// Whether they may hand `rep`'s calls to someone else or cancel them: sales ops, and the
    /// rep's managers.
    pub fn leads(&self, rep: &str) -> bool {
        self.sees_all() || self.team.contains(rep)
    }

    /// Whether they may record an absence for `rep`: their own, their team's, or anyone's for
    /// sales ops.
    pub fn speaks_for(&self, rep: &str) -> bool {
        self.email.as_str() == rep || self.leads(rep)
    }

    /// For the audit trail: their address.
    pub fn actor(&self) -> String {
        self.email.to_string()
    }

    /// In words: "Ana Ávila (manager)", "ops@seller.example (sales ops)".
    pub fn label(&self) -> String {
        format!("{} ({})", self.name.as_deref().unwrap_or(self.email.as_str()), self.role.label())
    }
}

/// Who `email` is, or `None` when they may not sign in: neither in the rep directory nor a
/// sales-ops address.
pub async fn resolve(db: &impl ConnectionTrait, email: &str, settings: &SignInSettings) -> Result<Option<Person>, DbErr> {
    let Ok(address) = EmailAddress::parse(email) else { return Ok(None) };
    let entry = entity::reps::Entity::find_by_id(address.to_string()).one(db).await?;
    let sales_ops = settings.is_sales_ops(address.as_str());
    if entry.is_none() && !sales_ops {
        return Ok(None);
    }
    let team = team_of(db, address.as_str()).await?;
    let role = if sales_ops {
        Role::SalesOps
    } else if team.is_empty() {
        Role::Rep
    } else {
        Role::Manager
    };
    Ok(Some(Person { email: address, name: entry.map(|e| e.name).filter(|n| !n.is_empty()), role, team }))
}

/// The reps under `manager`, down the directory's manager chain: one query per level.
pub async fn team_of(db: &impl ConnectionTrait, manager: &str) -> Result<BTreeSet<String>, DbErr> {
    let mut team = BTreeSet::new();
    let mut level = vec![manager.to_string()];
    for _ in 0..MAX_DEPTH {
        if level.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for chunk in level.chunks(500) {
            let under: Vec<String> = entity::reps::Entity::find()
                .select_only()
                .column(entity::reps::Column::Email)
                .filter(entity::reps::Column::ManagerEmail.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(db)
                .await?;
            next.extend(under.into_iter().filter(|e| e != manager && team.insert(e.clone())));
        }
        level = next;
    }
    Ok(team)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(role: Role, team: &[&str]) -> Person {
        Person {
            email: EmailAddress::parse("mia@seller.example").unwrap(),
            name: None,
            role,
            team: team.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_rep_sees_their_own_calls_and_those_they_cover_a_manager_their_teams_sales_ops_all() {
        let rep = person(Role::Rep, &[]);
        assert!(rep.may_see("mia@seller.example", None));
        assert!(rep.may_see("ana@seller.example", Some("mia@seller.example")));
        assert!(!rep.may_see("ana@seller.example", None));
        assert!(!rep.leads("ana@seller.example"));
        assert!(rep.speaks_for("mia@seller.example") && !rep.speaks_for("ana@seller.example"));
        let manager = person(Role::Manager, &["ana@seller.example"]);
        assert!(manager.may_see("ana@seller.example", None) && manager.leads("ana@seller.example"));
        assert!(!manager.may_see("zed@seller.example", None) && !manager.leads("mia@seller.example"));
        let ops = person(Role::SalesOps, &[]);
        assert!(ops.may_see("zed@seller.example", None) && ops.leads("zed@seller.example"));
        assert_eq!(ops.label(), "mia@seller.example (sales ops)");
    }
}
