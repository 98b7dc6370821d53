//! The `ProductStore` trait every backend implements, and its behaviour suite.

use async_trait::async_trait;

use crate::product::Product;

/// Errors from product stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such item, table or backup.
    #[error("{0} not found")]
    NotFound(String),
    /// A table or item that must be new already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A request outside what the store accepts (a restore time outside the window,
    /// a page size of 0).
    #[error("{0}")]
    InvalidInput(String),
    /// The database (or the service behind it) failed.
    #[error("{context}: {source}")]
    Storage {
        /// What was being done.
        context: String,
        /// The failure, kept whole (its own source chain included).
        #[source]
        source: BoxError,
    },
}

/// Any error, sent between threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A storage failure while doing `context`; `e` is kept as the source (a
    /// message given as a string becomes one).
    pub fn storage(context: impl Into<String>, e: impl Into<BoxError>) -> Self {
        Error::Storage {
            context: context.into(),
            source: e.into(),
        }
    }
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The items.
    pub items: Vec<Product>,
    /// The key to continue after, when there may be more.
    pub last_evaluated_key: Option<String>,
}

/// A table of products keyed by `product_id`.
#[async_trait]
pub trait ProductStore: Send + Sync + std::fmt::Debug {
    /// Stores a new item; [`Error::AlreadyExists`] if the id is taken.
    async fn create(&self, item: &Product) -> Result<()>;
    /// The item, if there is one.
    async fn get(&self, id: &str) -> Result<Option<Product>>;
    /// Replaces category and title of an existing item; `None` if it does not exist.
    async fn update(&self, id: &str, category: &str, title: &str, now_us: u64) -> Result<Option<Product>>;
    /// Removes an item; false if there was none.
    async fn delete(&self, id: &str) -> Result<bool>;
    /// Up to `limit` items after the cursor `after` (a `last_evaluated_key`), in the
    /// store's order: key order for the embedded store, hash order for DynamoDB.
    async fn scan(&self, limit: usize, after: Option<&str>) -> Result<Page>;
    /// The table's name, for messages.
    fn table_name(&self) -> String;
}

/// Every item of a store, in key order (scanning page by page).
pub async fn scan_all(store: &dyn ProductStore) -> Result<Vec<Product>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.scan(1000, after.as_deref()).await?;
        out.extend(page.items);
        match page.last_evaluated_key {
            Some(k) => after = Some(k),
            None => return Ok(out),
        }
    }
}

/// The behaviour every [`ProductStore`] must show (panics on a violation).
pub mod suite {
    use super::*;

    /// A product in "Books" titled `title`, never rated, last written at 1 µs.
    pub fn item(id: &str, title: &str) -> Product {
        Product {
            product_id: id.into(),
            product_category: "Books".into(),
            product_title: title.into(),
            sum_rating: 0,
            count_rating: 0,
            updated_at_us: 1,
        }
    }

    /// Create, get, update, delete, scan with paging, and the refusals.
    pub async fn crud_and_paging(store: &dyn ProductStore) {
        assert!(store.get("a").await.unwrap().is_none());
        store.create(&item("b", "B")).await.unwrap();
        store.create(&item("a", "A")).await.unwrap();
        store.create(&item("c", "C")).await.unwrap();
        assert!(matches!(
            store.create(&item("a", "again")).await,
            Err(Error::AlreadyExists(_))
        ));
        assert_eq!(store.get("a").await.unwrap().unwrap().product_title, "A");
        let updated = store.update("b", "Games", "B2", 99).await.unwrap().unwrap();
        assert_eq!(
            (updated.product_category.as_str(), updated.product_title.as_str()),
            ("Games", "B2")
        );
        assert_eq!(updated.updated_at_us, 99);
        assert!(store.update("zz", "x", "y", 1).await.unwrap().is_none());
        let p1 = store.scan(2, None).await.unwrap();
        assert_eq!(
            p1.items.iter().map(|p| p.product_id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let p2 = store.scan(2, p1.last_evaluated_key.as_deref()).await.unwrap();
        assert_eq!(p2.items.len(), 1);
        assert!(p2.last_evaluated_key.is_none());
        assert!(store.delete("a").await.unwrap());
        assert!(!store.delete("a").await.unwrap());
        assert_eq!(scan_all(store).await.unwrap().len(), 2);
        assert!(matches!(store.scan(0, None).await, Err(Error::InvalidInput(_))));
    }
}
