//! The service's secrets in usable form, resolved once at start-up: API tokens, link-signing
//! keys (generated and kept in the database when none is configured), webhook secrets, and the
//! dashboard session cookie derived from them. Also the per-source webhook rate limits.

use std::num::NonZeroU32;

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

use crate::config::Settings;
use crate::config::secrets::{Secret, sha256};
use crate::domain::Source;
use crate::links::{ApiAuth, LinkSigner};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub struct Security {
    pub api: ApiAuth,
    pub links: std::sync::Arc<LinkSigner>,
    pub generic: Vec<Secret>,
    pub hubspot: Vec<Secret>,
    pub pipedrive: Vec<Secret>,
    /// No link-signing key is configured: links (and dashboard sessions, whose key derives from
    /// it) are signed with a key generated once and kept in plain text in the database.
    pub link_key_from_database: bool,
    api_hashes: Vec<([u8; 32], Option<DateTime<Utc>>)>,
    session_key: [u8; 32],
}

const LINK_KEY: &str = "link_signing_key";

impl Security {
    /// Resolves secrets from settings; without configured link-signing keys, uses (and on first
    /// start creates) one kept in the database, so every process signs alike.
    pub async fn load(s: &Settings, db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Security, DbErr> {
        let parse = |l: &crate::config::SecretList| l.secrets().unwrap_or_default();
        let api_tokens = parse(&s.api.tokens);
        let mut link_keys = parse(&s.links.signing_keys);
        let link_key_from_database = link_keys.is_empty();
        if link_key_from_database {
            link_keys.push(Secret::from_value(&stored_link_key(db, now).await?));
        }
        let signing = link_keys.iter().find(|k| k.active_at(now) && k.value.is_some()).and_then(|k| k.value.clone()).unwrap_or_default();
        let mut mac = HmacSha256::new_from_slice(&signing).map_err(|e| DbErr::Custom(e.to_string()))?;
        mac.update(b"firstcall dashboard session");
        let session_key: [u8; 32] = mac.finalize().into_bytes().into();
        Ok(Security {
            api_hashes: api_tokens.iter().map(|t| (t.sha256, t.expires_at)).collect(),
            api: ApiAuth::new(api_tokens),
            links: std::sync::Arc::new(LinkSigner::new(link_keys).map_err(|_| DbErr::Custom("no usable link-signing key".into()))?),
            generic: parse(&s.webhooks.generic.secrets),
            hubspot: parse(&s.webhooks.hubspot.client_secrets),
            pipedrive: parse(&s.webhooks.pipedrive.basic_auth),
            link_key_from_database,
            session_key,
        })
    }

    /// A dashboard session for the holder of `token`, valid until `expires`. The cookie names
    /// the token only by a prefix of its hash and stops working when the token is retired.
    pub fn session_cookie(&self, token: &str, expires: DateTime<Utc>) -> String {
        let prefix = hex::encode(&sha256(token.as_bytes())[..8]);
        let body = format!("{}.{}", expires.timestamp(), prefix);
        format!("{body}.{}", self.mac_hex(&body))
    }

    pub fn check_session(&self, cookie: &str, now: DateTime<Utc>) -> bool {
        let Some((body, mac)) = cookie.rsplit_once('.') else { return false };
        let Some((exp, prefix)) = body.split_once('.') else { return false };
        let expected = self.mac_hex(body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), mac.as_bytes())) {
            return false;
        }
        let Ok(exp) = exp.parse::<i64>() else { return false };
        if now.timestamp() >= exp {
            return false;
        }
        self.api_hashes.iter().any(|(h, until)| hex::encode(&h[..8]) == prefix && until.is_none_or(|u| now < u))
    }

    fn mac_hex(&self, body: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.session_key).expect("any key length");
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

async fn stored_link_key(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<String, DbErr> {
    use entity::kv_store;
    if let Some(row) = kv_store::Entity::find_by_id(LINK_KEY.to_string()).one(db).await? {
        return Ok(row.value);
    }
    let key = hex::encode(rand::random::<[u8; 32]>());
    let am = kv_store::ActiveModel { key: Set(LINK_KEY.into()), value: Set(key), updated_at: Set(now) };
    // Two processes starting together: the first insert wins and both read it back.
    kv_store::Entity::insert(am).on_conflict_do_nothing_on([kv_store::Column::Key]).exec(db).await?;
    kv_store::Entity::find_by_id(LINK_KEY.to_string())
        .one(db)
        .await?
        .map(|r| r.value)
        .ok_or_else(|| DbErr::Custom("link-signing key vanished".into()))
}

/// A request budget per CRM source.
pub struct RateLimits {
    limiters: Option<Vec<(Source, governor::DefaultDirectRateLimiter)>>,
}

impl RateLimits {
    pub fn new(per_minute: u32) -> RateLimits {
        let limiters = NonZeroU32::new(per_minute)
            .map(|n| Source::ALL.iter().map(|s| (*s, governor::RateLimiter::direct(governor::Quota::per_minute(n)))).collect());
        RateLimits { limiters }
    }

    pub fn allow(&self, source: Source) -> bool {
        match &self.limiters {
            None => true,
            Some(l) => l.iter().find(|(s, _)| *s == source).is_none_or(|(_, lim)| lim.check().is_ok()),
        }
    }
}
