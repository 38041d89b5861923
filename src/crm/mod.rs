//! CRM notes: the connectors that fetch a deal's notes from HubSpot, Pipedrive and Salesforce
//! (to come), and the markup reps type in them to state requirements and commitments
//! ([`markup`]: `#need sso must by 2027-01-15: Single sign-on through Okta`). Pure: the markup
//! reads text that a connector has fetched, and [`text_of_html`] turns a rich-text note into it.

pub mod html;
pub mod markup;

pub use html::text_of_html;
pub use markup::{Items, Note, Unreadable, read_notes};
