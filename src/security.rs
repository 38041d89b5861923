//! The service's secrets in usable form, resolved once at start-up: API tokens, link-signing
//! keys (generated and kept in the database when none is configured), webhook secrets, and
//! whether the API token a dashboard session was opened with is still live. Also the per-source webhook rate limits and the
//! limit on failed authentication attempts per client address.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

use crate::config::Settings;
use crate::config::secrets::{Secret, SecretBytes, sha256};
use crate::domain::Source;
use crate::links::{ApiAuth, LinkSigner};

pub struct Security {
    pub api: ApiAuth,
    pub links: std::sync::Arc<LinkSigner>,
    pub generic: Vec<Secret>,
    pub hubspot: Vec<Secret>,
    pub pipedrive: Vec<Secret>,
    /// The Salesforce endpoint's secret path segments; empty: the endpoint takes none.
    pub salesforce_path: Vec<Secret>,
    /// No link-signing key is configured: links (and the CSRF tokens of forms) are signed with a
    /// key generated once and kept in plain text in the database.
    pub link_key_from_database: bool,
    /// The first bytes of each API token's hash (what a session names it by), and its expiry.
    api_prefixes: Vec<(SecretBytes, Option<DateTime<Utc>>)>,
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
        Ok(Security {
            api_prefixes: api_tokens.iter().map(|t| (t.sha256.prefix(TOKEN_PREFIX_LEN), t.expires_at)).collect(),
            api: ApiAuth::new(api_tokens),
            links: std::sync::Arc::new(LinkSigner::new(link_keys).map_err(|_| DbErr::Custom("no usable link-signing key".into()))?),
            generic: parse(&s.webhooks.generic.secrets),
            hubspot: parse(&s.webhooks.hubspot.client_secrets),
            pipedrive: parse(&s.webhooks.pipedrive.basic_auth),
            salesforce_path: parse(&s.webhooks.salesforce.path_secrets),
            link_key_from_database,
        })
    }

    /// How a dashboard session names the API token it was opened with: a prefix of the token's
    /// hash, never the token.
    pub fn token_prefix(token: &str) -> String {
        hex::encode(&sha256(token.as_bytes())[..TOKEN_PREFIX_LEN])
    }

    /// Whether the API token that `prefix` names is configured and not expired at `now`.
    pub fn token_live(&self, prefix: &str, now: DateTime<Utc>) -> bool {
        let Ok(presented) = hex::decode(prefix) else { return false };
        SecretBytes::matches_any(self.api_prefixes.iter().filter(|(_, until)| until.is_none_or(|u| now < u)).map(|(p, _)| p), &presented)
    }
}

/// Bytes of a token's SHA-256 that name it in a session row.
const TOKEN_PREFIX_LEN: usize = 8;

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

/// Failed authentication attempts per client address: wrong webhook signatures, passwords and
/// org ids, wrong API tokens, wrong tokens on the login form. After `limit` failures within
/// `window` from one address, its further failures are refused (429) until the budget refills at
/// one attempt per `window / limit`. Only failures are charged: a request whose credentials
/// verify is never counted nor refused here, so a flood of wrong guesses from an address (or
/// from a proxy in front of firstcall) cannot lock out the CRM or sales ops.
pub struct FailedAuth {
    limiter: Option<governor::DefaultKeyedRateLimiter<IpAddr>>,
}

/// Addresses remembered before the ones whose budget has refilled are forgotten.
const FAILED_AUTH_TRACKED: usize = 10_000;

impl FailedAuth {
    /// `limit` 0 or a zero `window`: no limit.
    pub fn new(limit: u32, window: Duration) -> FailedAuth {
        let limiter = NonZeroU32::new(limit)
            .and_then(|n| governor::Quota::with_period(window / n.get()).map(|q| governor::RateLimiter::keyed(q.allow_burst(n))));
        FailedAuth { limiter }
    }

    /// Counts a failed attempt from `addr`. `Err(wait)` when the address is over its budget:
    /// refuse with 429 and ask the client to wait that long.
    pub fn failed(&self, addr: IpAddr) -> Result<(), Duration> {
        use governor::clock::Clock;
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if limiter.len() > FAILED_AUTH_TRACKED {
            limiter.retain_recent();
        }
        limiter.check_key(&client_key(addr)).map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }
}

/// One key per client: an IPv4 address (also when mapped into IPv6), or an IPv6 /64, the block
/// one subscriber usually holds.
fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use super::{FailedAuth, Security, TOKEN_PREFIX_LEN};
    use crate::config::secrets::{Secret, SecretBytes, one_char_changes, sha256};
    use crate::links::{ApiAuth, LinkSigner};

    #[test]
    fn a_session_names_a_live_token_only_by_its_exact_prefix() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let prefix = |t: &str| SecretBytes::new(&sha256(t.as_bytes())[..TOKEN_PREFIX_LEN]);
        let security = Security {
            api: ApiAuth::new(vec![Secret::from_value("api-token-0001")]),
            links: Arc::new(LinkSigner::ephemeral()),
            generic: vec![],
            hubspot: vec![],
            pipedrive: vec![],
            salesforce_path: vec![],
            link_key_from_database: false,
            api_prefixes: vec![(prefix("api-token-0001"), None), (prefix("retired-token-01"), Some(now))],
        };
        let live = Security::token_prefix("api-token-0001");
        assert!(security.token_live(&live, now));
        assert!(!security.token_live(&Security::token_prefix("retired-token-01"), now), "expired");
        for changed in one_char_changes(&live) {
            assert!(!security.token_live(&changed, now), "{changed}");
        }
        assert!(!security.token_live("", now) && !security.token_live("not hex", now));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn failures_are_limited_per_address_and_refill_over_the_window() {
        let limit = FailedAuth::new(3, Duration::from_millis(300));
        for _ in 0..3 {
            assert_eq!(limit.failed(ip("192.0.2.1")), Ok(()));
        }
        let wait = limit.failed(ip("192.0.2.1")).expect_err("the fourth failure within the window is refused");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(limit.failed(ip("192.0.2.2")), Ok(()), "another address has its own budget");
        std::thread::sleep(Duration::from_millis(110));
        assert_eq!(limit.failed(ip("192.0.2.1")), Ok(()), "one attempt back per window / limit");
        assert!(limit.failed(ip("192.0.2.1")).is_err());
    }

    #[test]
    fn an_ipv6_subscriber_block_is_one_client_and_zero_means_no_limit() {
        let limit = FailedAuth::new(1, Duration::from_secs(60));
        assert_eq!(limit.failed(ip("2001:db8:1:2::1")), Ok(()));
        assert!(limit.failed(ip("2001:db8:1:2:ffff::9")).is_err(), "same /64");
        assert_eq!(limit.failed(ip("2001:db8:1:3::1")), Ok(()), "another /64");
        assert_eq!(limit.failed(ip("::ffff:192.0.2.7")), Ok(()));
        assert!(limit.failed(ip("192.0.2.7")).is_err(), "an IPv4-mapped address is the IPv4 address");
        let off = FailedAuth::new(0, Duration::from_secs(60));
        assert!((0..100).all(|_| off.failed(ip("192.0.2.1")).is_ok()));
    }
}
