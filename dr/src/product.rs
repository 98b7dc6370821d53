//! A product and the rules its fields follow.

use serde::{Deserialize, Serialize};

/// Longest `product_category`, in characters.
pub const MAX_CATEGORY: usize = 100;
/// Longest `product_title`, in characters.
pub const MAX_TITLE: usize = 500;

/// A catalogue item, as stored and as returned by the API (field names as the
/// original DynamoDB items).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Server-owned: assigned on add, a time-ordered UUID (version 7, RFC 9562), so
    /// items added together are stored together.
    pub product_id: String,
    /// Category.
    pub product_category: String,
    /// Title.
    pub product_title: String,
    /// Server-owned: sum of ratings (0 on add).
    pub sum_rating: i64,
    /// Server-owned: number of ratings (0 on add).
    pub count_rating: i64,
    /// Server-owned: last write, microseconds since the Unix epoch (replication is
    /// last-writer-wins on it; canaries measure RPO with it).
    pub updated_at_us: u64,
}

impl Product {
    /// A stable hash of the item's content, for comparing tables item by item.
    pub fn content_hash(&self) -> u64 {
        // FNV-1a over the fields, separated so that ("ab","c") != ("a","bc").
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes.iter().chain([0xffu8].iter()) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(self.product_id.as_bytes());
        eat(self.product_category.as_bytes());
        eat(self.product_title.as_bytes());
        eat(&self.sum_rating.to_le_bytes());
        eat(&self.count_rating.to_le_bytes());
        eat(&self.updated_at_us.to_le_bytes());
        h
    }
}

/// A field that is missing, empty or too long, named for the 400 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Checks a category or title: present, not blank, at most `max` characters.
pub fn check_field(field: &'static str, value: Option<&str>, max: usize) -> Result<String, FieldError> {
    let v = value.ok_or_else(|| FieldError {
        field,
        message: format!("{field} is required"),
    })?;
    if v.trim().is_empty() {
        return Err(FieldError {
            field,
            message: format!("{field} must not be empty"),
        });
    }
    let n = v.chars().count();
    if n > max {
        return Err(FieldError {
            field,
            message: format!("{field} is {n} characters long; the limit is {max}"),
        });
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Product {
        Product {
            product_id: "1".into(),
            product_category: "Books".into(),
            product_title: "Dune".into(),
            sum_rating: 0,
            count_rating: 0,
            updated_at_us: 5,
        }
    }

    #[test]
    fn content_hash_changes_with_every_field() {
        let base = p().content_hash();
        let mut q = p();
        q.product_title.push('!');
        assert_ne!(q.content_hash(), base);
        let mut q = p();
        q.count_rating = 1;
        assert_ne!(q.content_hash(), base);
        let mut a = p();
        a.product_category = "ab".into();
        a.product_title = "c".into();
        let mut b = p();
        b.product_category = "a".into();
        b.product_title = "bc".into();
        assert_ne!(a.content_hash(), b.content_hash());
    }

    #[test]
    fn fields_are_checked_by_name() {
        assert_eq!(
            check_field("product_title", None, 5).unwrap_err().message,
            "product_title is required"
        );
        assert!(
            check_field("product_title", Some("  "), 5)
                .unwrap_err()
                .message
                .contains("empty")
        );
        assert!(
            check_field("product_title", Some("abcdef"), 5)
                .unwrap_err()
                .message
                .contains("limit is 5")
        );
        assert_eq!(check_field("product_title", Some("héllo"), 5).unwrap(), "héllo");
    }
}
