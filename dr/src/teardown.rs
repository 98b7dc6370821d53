//! Emptying the DR stacks' vaults, so that `cdk destroy` of a dev deployment can
//! delete them: AWS Backup deletes only an empty vault ("DeleteBackupVault: the
//! backup vault to delete must be empty"), and the plan fills both every day.
//! `tandem dr empty-vaults` runs this on the primary vault and the recovery vault.
//!
//! Deleting a recovery point is asynchronous (it goes `DELETING`), so a vault is
//! empty only once listing it returns nothing; points already `DELETING` are not
//! asked again.

use aws_sdk_backup::Client;
use aws_sdk_backup::operation::delete_recovery_point::DeleteRecoveryPointError;
use aws_sdk_backup::operation::list_recovery_points_by_backup_vault::ListRecoveryPointsByBackupVaultError;
use aws_sdk_backup::types::RecoveryPointStatus;
use tandem_sdk::ServiceError;

use crate::drill::{Poll, Waiter};
use crate::store::{Error, Result};

/// What emptying a vault did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Emptied {
    /// Recovery points whose deletion this run asked for.
    pub deleted: usize,
}

type Listed = Vec<(String, Option<RecoveryPointStatus>)>;
type ListError = aws_sdk_backup::error::SdkError<ListRecoveryPointsByBackupVaultError>;

/// The vault does not exist (then it is empty).
fn no_vault(e: &ListError) -> bool {
    matches!(
        e.as_service_error(),
        Some(ListRecoveryPointsByBackupVaultError::ResourceNotFoundException(_))
    )
}

/// Every recovery point in `vault`, all pages: (ARN, status).
async fn points(client: &Client, vault: &str) -> std::result::Result<Listed, ListError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_recovery_points_by_backup_vault()
            .backup_vault_name(vault)
            .set_next_token(token.take())
            .send()
            .await?;
        out.extend(page.recovery_points().iter().filter_map(|p| {
            p.recovery_point_arn()
                .map(|arn| (arn.to_string(), p.status().cloned()))
        }));
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

fn listing_failed(vault: &str, e: ListError) -> Error {
    Error::storage(
        format!("list the recovery points of vault {vault}"),
        ServiceError::from(e),
    )
}

/// The recovery points in `vault` (0 when it does not exist).
pub async fn count(client: &Client, vault: &str) -> Result<usize> {
    match points(client, vault).await {
        Ok(p) => Ok(p.len()),
        Err(e) if no_vault(&e) => Ok(0),
        Err(e) => Err(listing_failed(vault, e)),
    }
}

/// Deletes every recovery point in `vault` and waits until listing it returns
/// nothing. Each look lists the vault and asks to delete what is not `DELETING`
/// yet; a point a running job still uses (`InvalidResourceStateException`) is asked
/// again at the next look. A vault that does not exist is empty.
pub async fn empty_vault(client: &Client, vault: &str, wait: &Waiter<'_>) -> Result<Emptied> {
    let deleted = std::sync::atomic::AtomicUsize::new(0);
    wait.until(&format!("vault {vault} to be empty"), || async {
        let listed = match points(client, vault).await {
            Ok(p) => p,
            Err(e) if no_vault(&e) => return Ok(Poll::Ready(())),
            Err(e) => return Err(listing_failed(vault, e)),
        };
        if listed.is_empty() {
            return Ok(Poll::Ready(()));
        }
        let mut busy = 0;
        for (arn, status) in &listed {
            if *status == Some(RecoveryPointStatus::Deleting) {
                continue;
            }
            match client
                .delete_recovery_point()
                .backup_vault_name(vault)
                .recovery_point_arn(arn)
                .send()
                .await
            {
                Ok(_) => {
                    deleted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => match e.as_service_error() {
                    // Gone already.
                    Some(DeleteRecoveryPointError::ResourceNotFoundException(_)) => {}
                    // A copy or restore job still reads it.
                    Some(DeleteRecoveryPointError::InvalidResourceStateException(_)) => busy += 1,
                    _ => {
                        return Err(Error::storage(
                            format!("delete recovery point {arn} in vault {vault}"),
                            ServiceError::from(e),
                        ));
                    }
                },
            }
        }
        Ok(Poll::Pending(format!(
            "{} recovery points left, {busy} in use by a job",
            listed.len()
        )))
    })
    .await?;
    Ok(Emptied {
        deleted: deleted.into_inner(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use aws_sdk_backup::operation::delete_recovery_point::DeleteRecoveryPointOutput;
    use aws_sdk_backup::operation::list_recovery_points_by_backup_vault::ListRecoveryPointsByBackupVaultOutput;
    use aws_sdk_backup::types::RecoveryPointByBackupVault;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::drill::Cleanup;

    fn point(arn: &str, status: RecoveryPointStatus) -> RecoveryPointByBackupVault {
        RecoveryPointByBackupVault::builder()
            .recovery_point_arn(arn)
            .status(status)
            .build()
    }

    const P: &str = "arn:aws:backup:us-east-2:111122223333:recovery-point:";

    /// Empties `tandem-dr-primary` on a client answered by `rules`, within the
    /// command's IAM contract; returns what it did and what it said.
    async fn empty_primary(rules: &[&aws_smithy_mocks::Rule]) -> (Emptied, Vec<String>) {
        let calls = tandem_sdk::calls::contract::Calls::new("tandem dr empty-vaults")
            .bind("PrimaryVault", "tandem-dr-primary");
        let client = mock_client!(aws_sdk_backup, RuleMode::MatchAny, rules, |c| c
            .interceptor(calls.recorder(crate::calls::backup))
            .region(aws_sdk_backup::config::Region::new("us-east-2")));
        let cleanup = Cleanup::new();
        let said = Mutex::new(Vec::new());
        let say = |s: String| said.lock().unwrap().push(s);
        let wait = Waiter::emptying_vaults(&say, &cleanup);
        let e = empty_vault(&client, "tandem-dr-primary", &wait).await.unwrap();
        (e, said.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn every_point_on_every_page_is_deleted_and_the_vault_waited_empty() {
        // First look: two pages (one point already DELETING); then one DELETING;
        // then nothing.
        let listings = Mutex::new(0);
        let list = mock!(Client::list_recovery_points_by_backup_vault)
            .match_requests(|r| r.backup_vault_name() == Some("tandem-dr-primary"))
            .then_output(move || {
                let mut n = listings.lock().unwrap();
                *n += 1;
                let b = ListRecoveryPointsByBackupVaultOutput::builder();
                match *n {
                    1 => b
                        .recovery_points(point(&format!("{P}a"), RecoveryPointStatus::Completed))
                        .recovery_points(point(&format!("{P}b"), RecoveryPointStatus::Deleting))
                        .next_token("page-2")
                        .build(),
                    2 => b
                        .recovery_points(point(&format!("{P}c"), RecoveryPointStatus::Expired))
                        .build(),
                    3 => b
                        .recovery_points(point(&format!("{P}c"), RecoveryPointStatus::Deleting))
                        .build(),
                    _ => b.build(),
                }
            });
        let delete = mock!(Client::delete_recovery_point)
            .match_requests(|r| r.recovery_point_arn() != Some(&format!("{P}b")))
            .then_output(|| DeleteRecoveryPointOutput::builder().build());
        let (e, _) = empty_primary(&[&list, &delete]).await;
        assert_eq!(e.deleted, 2);
        assert_eq!(delete.num_calls(), 2);
        assert_eq!(list.num_calls(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_point_in_use_is_asked_again_until_it_goes() {
        let looks = Mutex::new(0);
        let list = mock!(Client::list_recovery_points_by_backup_vault).then_output(move || {
            let mut n = looks.lock().unwrap();
            *n += 1;
            let b = ListRecoveryPointsByBackupVaultOutput::builder();
            match *n {
                1 | 2 => b
                    .recovery_points(point(&format!("{P}busy"), RecoveryPointStatus::Completed))
                    .build(),
                _ => b.build(),
            }
        });
        // The first delete is refused (a job still reads the point), the next one not.
        let first = std::sync::atomic::AtomicBool::new(true);
        let in_use = mock!(Client::delete_recovery_point)
            .match_requests(move |_| first.swap(false, std::sync::atomic::Ordering::SeqCst))
            .then_error(|| {
                DeleteRecoveryPointError::InvalidResourceStateException(
                    aws_sdk_backup::types::error::InvalidResourceStateException::builder()
                        .message("in use by a copy job")
                        .build(),
                )
            });
        let ok =
            mock!(Client::delete_recovery_point).then_output(|| DeleteRecoveryPointOutput::builder().build());
        let (e, said) = empty_primary(&[&list, &in_use, &ok]).await;
        assert_eq!(e.deleted, 1);
        assert_eq!((in_use.num_calls(), ok.num_calls()), (1, 1));
        assert!(said.iter().any(|s| s.contains("1 in use by a job")), "{said:?}");
    }
}
