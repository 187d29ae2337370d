//! Account rules: what a valid username, password, display name, device id and region are.
//!
//! Each rule lives in a newtype built by `parse`: once you hold a [`Username`], it is valid.
//! Errors say which rule failed in words fit to show a player.

use std::fmt;

/// Why an account field was refused. The message is safe to show to the player.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidField(pub &'static str);

/// A username: 3–32 characters of `[A-Za-z0-9_-]`. Unique case-insensitively; [`Username::key`]
/// is the form uniqueness is decided on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        if raw.len() < Self::MIN_LEN || raw.len() > Self::MAX_LEN {
            return Err(InvalidField("must be 3 to 32 characters long"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(InvalidField(
                "may contain only letters A-Z, digits, '_' and '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form two usernames collide on. The alphabet is ASCII, so ASCII folding
    /// is complete.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: 1–32 printable characters (no control or invisible formatting characters),
/// not blank, no leading or trailing whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(InvalidField("must be 1 to 32 characters long"));
        }
        if raw.trim() != raw || raw.trim().is_empty() {
            return Err(InvalidField(
                "must not be blank or start or end with whitespace",
            ));
        }
        if raw.chars().any(is_unprintable) {
            return Err(InvalidField("must contain only printable characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&Username> for DisplayName {
    fn from(username: &Username) -> Self {
        Self(username.0.clone())
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Control characters, and the invisible format characters used to spoof names
/// (zero-width spaces and joiners, bidi overrides, BOM, soft hyphen).
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// A password as the player typed it: 8–128 characters. It is only ever hashed, never kept.
/// `Debug` is redacted so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(InvalidField("must be 8 to 128 characters long"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A device id a guest account logs in with: 6–128 visible ASCII characters (`!` to `~`: no
/// spaces, no control or non-ASCII characters, so one id has one spelling whatever the client's
/// encoding). It is a credential, the account's only one until linked: `Debug` is redacted.
///
/// Its strength is whatever the client put in it; the server cannot measure it, so a short id is
/// accepted but is only as safe as it is hard to guess. Clients should send a random id of at
/// least 128 bits (a UUID v4 is 36 characters), generated once and kept on the device.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceId(String);

impl DeviceId {
    pub const MIN_LEN: usize = 6;
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        // Never echo the id in the error: it is a credential.
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&raw.len()) {
            return Err(InvalidField("must be 6 to 128 characters long"));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidField(
                "may contain only visible ASCII characters ('!' to '~', no spaces)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceId(<redacted>)")
    }
}

/// A region code such as `eu`, `na-east` or `ap-southeast-1`: 2–32 characters of lowercase
/// ASCII letters, digits and '-', starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

impl Region {
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let valid_len = (2..=32).contains(&raw.len());
        let starts_with_letter = raw.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        let valid_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid_len && starts_with_letter && valid_chars {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidField(
                "must be 2 to 32 characters of a-z, 0-9 and '-', starting with a letter",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T>(parse: fn(&str) -> Result<T, InvalidField>, input: &str, ok: bool) {
        assert_eq!(
            parse(input).is_ok(),
            ok,
            "{input:?} should be {}",
            if ok { "accepted" } else { "refused" }
        );
    }

    #[test]
    fn usernames() {
        for good in ["abc", "Player_One", "x-y-z", "A".repeat(32).as_str(), "123"] {
            check(Username::parse, good, true);
        }
        for bad in [
            "",
            "ab",
            "a b c",
            "élan",
            "name!",
            "A".repeat(33).as_str(),
            "x'; DROP TABLE--",
        ] {
            check(Username::parse, bad, false);
        }
        assert_eq!(Username::parse("MiXeD").unwrap().key(), "mixed");
    }

    #[test]
    fn display_names() {
        for good in [
            "a",
            "Zoë the Great",
            "名前",
            "🎮 gamer",
            "é".repeat(32).as_str(),
        ] {
            check(DisplayName::parse, good, true);
        }
        for bad in [
            "",
            " ",
            " lead",
            "trail ",
            "bell\u{7}",
            "zero\u{200B}width",
            "é".repeat(33).as_str(),
            "rtl\u{202E}",
        ] {
            check(DisplayName::parse, bad, false);
        }
    }

    #[test]
    fn passwords() {
        check(Password::parse, "12345678", true);
        check(Password::parse, &"ü".repeat(128), true);
        check(Password::parse, "1234567", false);
        check(Password::parse, &"x".repeat(129), false);
        assert_eq!(
            format!("{:?}", Password::parse("secret-secret").unwrap()),
            "Password(<redacted>)"
        );
    }

    #[test]
    fn device_ids() {
        for good in [
            "abcdef",
            "0190d8a4-7d2c-4c8e-9d35-3f1f0a2b4c5d",
            "!~{}[]|\\'\"",
            "x".repeat(128).as_str(),
        ] {
            check(DeviceId::parse, good, true);
        }
        for bad in [
            "",
            "abcde",
            "has space",
            "tab\there",
            "née-device",
            "nul\0byte",
            "x".repeat(129).as_str(),
        ] {
            check(DeviceId::parse, bad, false);
        }
        assert_eq!(
            format!("{:?}", DeviceId::parse("secret-device").unwrap()),
            "DeviceId(<redacted>)"
        );
    }

    #[test]
    fn regions() {
        for good in ["eu", "na-east", "ap-southeast-1"] {
            check(Region::parse, good, true);
        }
        for bad in ["", "e", "EU", "1eu", "eu west", "e".repeat(33).as_str()] {
            check(Region::parse, bad, false);
        }
    }
}
