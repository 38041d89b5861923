//! firstcall's tables as sea-orm entities, one module per table. Nothing but table shapes:
//! behaviour lives in the `firstcall` crate.

pub mod audit_log;
pub mod calls;
pub mod check_ins;
pub mod emails;
pub mod jobs;
pub mod kv_store;
pub mod orders;
pub mod promises;
pub mod proposal_activities;
pub mod proposal_commitments;
pub mod proposal_contacts;
pub mod proposal_line_items;
pub mod proposal_requirements;
pub mod proposals;
pub mod rep_absences;
pub mod rep_crm_ids;
pub mod reps;
pub mod sessions;
pub mod sign_in_links;
pub mod webhook_events;

pub mod prelude {
    pub use super::audit_log::Entity as AuditLog;
    pub use super::calls::Entity as Calls;
    pub use super::check_ins::Entity as CheckIns;
    pub use super::emails::Entity as Emails;
    pub use super::jobs::Entity as Jobs;
    pub use super::kv_store::Entity as KvStore;
    pub use super::orders::Entity as Orders;
    pub use super::promises::Entity as Promises;
    pub use super::proposal_activities::Entity as ProposalActivities;
    pub use super::proposal_commitments::Entity as ProposalCommitments;
    pub use super::proposal_contacts::Entity as ProposalContacts;
    pub use super::proposal_line_items::Entity as ProposalLineItems;
    pub use super::proposal_requirements::Entity as ProposalRequirements;
    pub use super::proposals::Entity as Proposals;
    pub use super::rep_absences::Entity as RepAbsences;
    pub use super::rep_crm_ids::Entity as RepCrmIds;
    pub use super::reps::Entity as Reps;
    pub use super::sessions::Entity as Sessions;
    pub use super::sign_in_links::Entity as SignInLinks;
    pub use super::webhook_events::Entity as WebhookEvents;
}
