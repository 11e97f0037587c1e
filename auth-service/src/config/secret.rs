//! Secrets in settings (database and Redis URLs may carry passwords): a string type that keeps
//! its value out of `Debug` output, so a logged `Settings` cannot leak one.

use std::{fmt, str::FromStr};

/// A string that is never printed: `Debug` shows `<redacted>`, and there is no `Display`.
#[derive(Clone)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretString {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
