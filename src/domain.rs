//! Newtypes that parse outside input once, at the boundary, so the rest of the code can
//! trust them: email addresses, timezones, CRM sources, deal ids and money.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a value from outside was refused; the message is meant for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn bad(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

/// A syntactically valid, lower-cased email address without display name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim();
        if s.len() > 254 {
            return Err(bad("email address is longer than 254 characters"));
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')' | '[' | ']' | '\\'))
        {
            return Err(bad(format!("'{}' is not a valid email address", printable(s))));
        }
        let (local, domain) = s.split_once('@').ok_or_else(|| bad(format!("'{}' is not a valid email address (no @)", printable(s))))?;
        if local.is_empty()
            || local.len() > 64
            || domain.is_empty()
            || domain.contains('@')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad(format!("'{}' is not a valid email address", printable(s))));
        }
        if !domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.') {
            return Err(bad(format!("'{}' is not a valid email address", printable(s))));
        }
        Ok(Self(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`, lower-case.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EmailAddress::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An IANA timezone such as `Europe/Berlin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timezone(pub chrono_tz::Tz);

impl Timezone {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        chrono_tz::Tz::from_str(raw.trim())
            .map(Timezone)
            .map_err(|_| bad(format!("'{}' is not an IANA timezone (for example Europe/Berlin or America/New_York)", printable(raw))))
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for Timezone {
    fn default() -> Self {
        Timezone(chrono_tz::UTC)
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Serialize for Timezone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for Timezone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timezone::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The CRM an order or proposal comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Generic,
    Hubspot,
    Pipedrive,
    Salesforce,
}

impl Source {
    pub const ALL: [Source; 4] = [Source::Generic, Source::Hubspot, Source::Pipedrive, Source::Salesforce];

    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Generic => "generic",
            Source::Hubspot => "hubspot",
            Source::Pipedrive => "pipedrive",
            Source::Salesforce => "salesforce",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Source::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| bad(format!("unknown source '{}': expected one of generic, hubspot, pipedrive, salesforce", printable(raw))))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CRM deal id: 1 to 128 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DealId(String);

impl DealId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(bad("deal id is empty"));
        }
        if s.chars().count() > 128 {
            return Err(bad("deal id is longer than 128 characters"));
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(bad("deal id contains control characters"));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DealId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DealId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // CRMs send deal ids as numbers or strings.
        let v = serde_json::Value::deserialize(d)?;
        let s = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                return Err(serde::de::Error::custom("deal id must be a string or a number"));
            }
        };
        DealId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A three-letter ISO 4217 currency code, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim().to_ascii_uppercase();
        if s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Self(s))
        } else {
            Err(bad(format!("'{}' is not a three-letter currency code", printable(raw))))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits after the decimal point in this currency's minor unit.
    pub fn exponent(&self) -> u32 {
        match self.0.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND" | "VUV" | "XAF" | "XOF"
            | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount of money in the currency's minor unit (cents for USD), exact.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    /// Parses a decimal amount such as `"1234.5"` or `1234.50` in `currency`. More decimals than
    /// the currency has are refused rather than rounded.
    pub fn parse_decimal(raw: &str, currency: Currency) -> Result<Self, ParseError> {
        let s = raw.trim();
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let exp = currency.exponent() as usize;
        let frac = frac.trim_end_matches('0');
        if whole.is_empty() && frac.is_empty() || !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad(format!("'{}' is not a decimal amount", printable(raw))));
        }
        if frac.len() > exp {
            return Err(bad(format!("'{}' has more than {exp} decimals for {}", printable(raw), currency)));
        }
        let mut padded = frac.to_string();
        while padded.len() < exp {
            padded.push('0');
        }
        let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad(format!("'{}' is too large", printable(raw))))? };
        let frac: i64 = if padded.is_empty() { 0 } else { padded.parse().map_err(|_| bad("bad decimals"))? };
        let minor = whole
            .checked_mul(10i64.pow(exp as u32))
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(|| bad(format!("'{}' is too large", printable(raw))))?;
        Ok(Money { minor: if neg { -minor } else { minor }, currency })
    }

    /// Parses a JSON number or string amount.
    pub fn from_json(v: &serde_json::Value, currency: Currency) -> Result<Self, ParseError> {
        match v {
            serde_json::Value::Number(n) => Money::parse_decimal(&n.to_string(), currency),
            serde_json::Value::String(s) => Money::parse_decimal(s, currency),
            _ => Err(bad("amount must be a number or a decimal string")),
        }
    }

    /// The amount as a plain decimal string, e.g. `1234.50`.
    pub fn decimal(&self) -> String {
        let exp = self.currency.exponent();
        if exp == 0 {
            return self.minor.to_string();
        }
        let div = 10i64.pow(exp);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        format!("{sign}{}.{:0width$}", abs / div as u64, abs % div as u64, width = exp as usize)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.decimal(), self.currency)
    }
}

/// Shortens and strips control characters from a value quoted back in an error message.
pub fn printable(s: &str) -> String {
    printable_up_to(s, 80)
}

/// [`printable`] with another length: at most `max` characters of `s`, then `…` if it was longer.
pub fn printable_up_to(s: &str, max: usize) -> String {
    let cleaned: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
    if s.chars().count() > max { format!("{cleaned}…") } else { cleaned }
}

/// Why a text holding a NUL character is refused: PostgreSQL cannot store one in a text column.
pub const NUL_REASON: &str = "contains a NUL character (U+0000), which firstcall cannot store; remove it";

/// The path (`requirements[0].text`, `order.line_items[1].name`) of the first string or key in
/// `value` that holds a NUL character, after `prefix`; `None` when there is none. Text from
/// outside is checked with it before anything is stored.
pub fn nul_path(value: &serde_json::Value, prefix: &str) -> Option<String> {
    use serde_json::Value;
    let field = |key: &str| if prefix.is_empty() { printable(key) } else { format!("{prefix}.{}", printable(key)) };
    match value {
        Value::String(s) if s.contains('\0') => Some(if prefix.is_empty() { "(body)".into() } else { prefix.into() }),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_path(v, &format!("{prefix}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| if k.contains('\0') { Some(field(k)) } else { nul_path(v, &field(k)) }),
        _ => None,
    }
}

/// A line item as ordered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderedItem {
    pub sku: String,
    pub name: String,
    pub quantity: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Money>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_of_a_nul_character_is_found_anywhere() {
        let v = serde_json::json!({"a": [1, {"b": "ok"}, {"c": "x\u{0}"}], "d": "fine"});
        assert_eq!(nul_path(&v, "").as_deref(), Some("a[2].c"));
        assert_eq!(nul_path(&v, "[3]").as_deref(), Some("[3].a[2].c"));
        assert_eq!(nul_path(&serde_json::json!({"k\u{0}ey": 1}), "").as_deref(), Some("key"));
        assert_eq!(nul_path(&serde_json::json!("\u{0}"), "").as_deref(), Some("(body)"));
        assert_eq!(nul_path(&serde_json::json!({"a": "\\u0000 written out", "b": [null, 1.5, true]}), ""), None);
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(EmailAddress::parse(" Ana@Example.COM ").unwrap().as_str(), "ana@example.com");
        for bad in ["", "ana", "@x.com", "ana@", "a b@x.com", "ana@x..com", "ana@x.com\r\nBcc: e@v.il", "\"Ana\" <ana@x.com>"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn timezones_must_be_iana_names() {
        assert_eq!(Timezone::parse("Europe/Berlin").unwrap().name(), "Europe/Berlin");
        let err = Timezone::parse("Mars/Olympus").unwrap_err();
        assert!(err.0.contains("Mars/Olympus"));
    }

    #[test]
    fn money_is_exact() {
        let usd = Currency::parse("usd").unwrap();
        assert_eq!(Money::parse_decimal("1234.5", usd.clone()).unwrap().minor, 123450);
        assert_eq!(Money::parse_decimal("0.07", usd.clone()).unwrap().decimal(), "0.07");
        assert_eq!(Money::parse_decimal("-3", usd.clone()).unwrap().decimal(), "-3.00");
        assert!(Money::parse_decimal("1.234", usd.clone()).is_err());
        assert!(Money::parse_decimal("abc", usd.clone()).is_err());
        assert!(Money::parse_decimal("99999999999999999999", usd).is_err());
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(Money::parse_decimal("1200", jpy.clone()).unwrap().minor, 1200);
        assert!(Money::parse_decimal("1200.5", jpy).is_err());
    }

    #[test]
    fn sources_and_deal_ids() {
        assert_eq!(Source::parse("hubspot").unwrap(), Source::Hubspot);
        assert!(Source::parse("zoho").unwrap_err().0.contains("generic, hubspot"));
        assert!(DealId::parse("  ").is_err());
        assert_eq!(DealId::parse("D-1").unwrap().as_str(), "D-1");
    }
}
