//! Region names: an AWS region for DynamoDB and AWS Backup, a directory name for the
//! embedded store. Checked once where they enter (flags, configuration), so no path
//! separator or empty name can reach a file system call.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::store::Error;

/// A region name: 1 to 32 characters of `a-z 0-9 -`, starting with a letter and not
/// ending with `-` (`us-east-2`, `eu-west-1`, or a local name such as `primary`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionName(String);

impl RegionName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RegionName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let ok = (1..=32).contains(&s.len())
            && s.as_bytes()[0].is_ascii_lowercase()
            && !s.ends_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(Error::InvalidInput(format!(
                "region {s:?} is not a region name: use 1 to 32 characters of a-z 0-9 - \
                 starting with a letter, such as us-east-2"
            )))
        }
    }
}

impl TryFrom<String> for RegionName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<RegionName> for String {
    fn from(r: RegionName) -> String {
        r.0
    }
}

impl fmt::Display for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RegionName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_cannot_leave_their_directory() {
        for good in ["us-east-2", "eu-central-1", "primary", "r2"] {
            good.parse::<RegionName>().unwrap();
        }
        for bad in [
            "",
            "../../x",
            "us/east",
            "US-EAST-2",
            "-x",
            "x-",
            ".",
            "a b",
            &"a".repeat(33),
        ] {
            let err = bad.parse::<RegionName>().unwrap_err().to_string();
            assert!(err.contains("not a region name"), "{bad:?}: {err}");
        }
    }
}
