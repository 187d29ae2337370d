//! Where a long-lived connection gets fresh access tokens. An access token lives minutes; a
//! socket lives as long as the player plays. [`ReconnectingSocket`](crate::ws::ReconnectingSocket)
//! asks its [`TokenSource`] for a new token before the current one expires (and sends it as
//! `auth`), and again when the server closed the socket because a token expired.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::Mutex;

use crate::{Client, ClientError};

/// A boxed future, so that a token source can be held as `Arc<dyn TokenSource>`.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<String, ClientError>> + Send + 'a>>;

/// Something that can hand out a fresh access token for the same player.
pub trait TokenSource: Send + Sync {
    fn fresh_token(&self) -> TokenFuture<'_>;
}

/// Tokens from the refresh endpoint: spends the refresh token it holds for a new pair and keeps
/// the new refresh token for next time. One refresh at a time: two callers sharing it (a socket
/// renewing, REST after a 401) never present the same refresh token twice, which the server
/// would take for a stolen token and revoke the login.
pub struct RefreshingTokens {
    client: Client,
    refresh_token: Mutex<String>,
}

impl RefreshingTokens {
    pub fn new(client: &Client, refresh_token: impl Into<String>) -> Self {
        Self {
            client: client.clone(),
            refresh_token: Mutex::new(refresh_token.into()),
        }
    }

    /// The refresh token to use next (e.g. to persist, or to log out with).
    pub async fn refresh_token(&self) -> String {
        self.refresh_token.lock().await.clone()
    }
}

impl TokenSource for RefreshingTokens {
    fn fresh_token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let mut current = self.refresh_token.lock().await;
            let pair = self.client.refresh(&current).await?;
            *current = pair.refresh_token;
            Ok(pair.access_token)
        })
    }
}
