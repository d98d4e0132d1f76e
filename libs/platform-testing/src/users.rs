//! The users API as tests call it: one method per RPC, the caller's token passed
//! along, answers unwrapped from their envelopes, so a test reads as what it checks.

use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use tonic::Status;
use tonic::transport::Channel;

use crate::grpc::{answer, authed};

/// The password every test account signs up with.
pub const PASSWORD: &str = "correct horse battery staple";

/// A client of `users.v1.UserService`; clones share the channel.
#[derive(Debug, Clone)]
pub struct UsersApi {
    client: UserServiceClient<Channel>,
}

impl UsersApi {
    /// A client over `channel`.
    pub fn new(channel: Channel) -> Self {
        Self {
            client: UserServiceClient::new(channel),
        }
    }

    /// The generated client, for calls these methods do not cover.
    pub fn client(&self) -> UserServiceClient<Channel> {
        self.client.clone()
    }

    /// `CreateUser` with exactly these fields.
    pub async fn create_user(
        &self,
        email: &str,
        display_name: &str,
        password: &str,
    ) -> Result<pb::User, Status> {
        let request = pb::CreateUserRequest {
            email: email.to_owned(),
            display_name: display_name.to_owned(),
            password: password.to_owned(),
        };
        answer(self.client().create_user(request)).await
    }

    /// Signs `email` up as "Test User" with [`PASSWORD`]; panics if refused.
    pub async fn sign_up(&self, email: &str) -> pb::User {
        self.create_user(email, "Test User", PASSWORD)
            .await
            .unwrap_or_else(|status| panic!("sign-up of {email} refused: {status:?}"))
    }

    /// `CreateToken`: the whole answer.
    pub async fn create_token(
        &self,
        email: &str,
        password: &str,
    ) -> Result<pb::CreateTokenResponse, Status> {
        let request = pb::CreateTokenRequest {
            email: email.to_owned(),
            password: password.to_owned(),
        };
        answer(self.client().create_token(request)).await
    }

    /// Signs in: the access token for `email` and `password`.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<String, Status> {
        self.create_token(email, password)
            .await
            .map(|response| response.access_token)
    }

    /// `RefreshToken`: a new pair for `refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> Result<pb::CreateTokenResponse, Status> {
        let request = pb::RefreshTokenRequest {
            refresh_token: refresh_token.to_owned(),
        };
        answer(self.client().refresh_token(request)).await
    }

    /// `RevokeToken`: signs the session of `refresh_token` out.
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), Status> {
        self.client()
            .revoke_token(pb::RevokeTokenRequest {
                refresh_token: refresh_token.to_owned(),
            })
            .await
            .map(drop)
    }

    /// A signed-up account and its token.
    pub async fn user(&self, email: &str) -> (pb::User, String) {
        let user = self.sign_up(email).await;
        let token = self
            .sign_in(email, PASSWORD)
            .await
            .unwrap_or_else(|status| panic!("sign-in of {email} refused: {status:?}"));
        (user, token)
    }

    /// `GetUser` of `id` as the holder of `token`.
    pub async fn get_user(&self, id: &str, token: &str) -> Result<pb::User, Status> {
        let request = pb::GetUserRequest { id: id.to_owned() };
        answer(self.client().get_user(authed(request, token))).await
    }

    /// `UpdateUser` as the holder of `token`.
    pub async fn update_user(
        &self,
        request: pb::UpdateUserRequest,
        token: &str,
    ) -> Result<pb::User, Status> {
        answer(self.client().update_user(authed(request, token))).await
    }

    /// `DeleteUser` of `id` as the holder of `token`.
    pub async fn delete_user(&self, id: &str, token: &str) -> Result<(), Status> {
        let request = pb::DeleteUserRequest { id: id.to_owned() };
        self.client()
            .delete_user(authed(request, token))
            .await
            .map(drop)
    }

    /// One page of `ListUsers` as the holder of `token`.
    pub async fn list_users(
        &self,
        page_size: i32,
        page_token: &str,
        token: &str,
    ) -> Result<pb::ListUsersResponse, Status> {
        let request = pb::ListUsersRequest {
            page_size,
            page_token: page_token.to_owned(),
        };
        answer(self.client().list_users(authed(request, token))).await
    }

    /// The published key set.
    pub async fn get_jwks(&self) -> Vec<pb::Jwk> {
        self.client()
            .get_jwks(pb::GetJwksRequest {})
            .await
            .unwrap_or_else(|status| panic!("GetJwks failed: {status:?}"))
            .into_inner()
            .keys
    }
}
