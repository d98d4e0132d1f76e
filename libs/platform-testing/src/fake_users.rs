//! A stand-in for `users.v1.UserService` for the services and libraries that call
//! it: a test writes only the calls it is about, and every other call is
//! UNIMPLEMENTED, so a caller reaching for one fails the test plainly.

use std::sync::Arc;

use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_server::{UserService, UserServiceServer};
use tonic::{Request, Response, Status};

/// The calls of `users.v1.UserService` that other components make; each one a fake
/// leaves out answers UNIMPLEMENTED.
#[tonic::async_trait]
pub trait UsersFake: Send + Sync + 'static {
    /// `GetUser`.
    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::User> {
        unimplemented(request)
    }

    /// `CreateUser`.
    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Reply<pb::User> {
        unimplemented(request)
    }

    /// `GetJwks`.
    async fn get_jwks(&self, request: Request<pb::GetJwksRequest>) -> Reply<pb::GetJwksResponse> {
        unimplemented(request)
    }
}

/// What a call of the fake answers.
pub type Reply<T> = Result<Response<T>, Status>;

fn unimplemented<R, T>(_: Request<R>) -> Reply<T> {
    Err(Status::unimplemented(
        "not served by this fake users service",
    ))
}

/// `fake` as a `users.v1.UserService` server; clones share the fake.
#[derive(Debug)]
pub struct FakeUsers<F>(Arc<F>);

impl<F> Clone for FakeUsers<F> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

/// The gRPC service serving `fake`.
pub fn serve<F: UsersFake>(fake: F) -> UserServiceServer<FakeUsers<F>> {
    UserServiceServer::new(FakeUsers(Arc::new(fake)))
}

#[tonic::async_trait]
impl<F: UsersFake> UserService for FakeUsers<F> {
    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::User> {
        self.0.get_user(request).await
    }

    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Reply<pb::User> {
        self.0.create_user(request).await
    }

    async fn get_jwks(&self, request: Request<pb::GetJwksRequest>) -> Reply<pb::GetJwksResponse> {
        self.0.get_jwks(request).await
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Reply<pb::ListUsersResponse> {
        unimplemented(request)
    }

    async fn update_user(&self, request: Request<pb::UpdateUserRequest>) -> Reply<pb::User> {
        unimplemented(request)
    }

    async fn delete_user(&self, request: Request<pb::DeleteUserRequest>) -> Reply<()> {
        unimplemented(request)
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Reply<pb::CreateTokenResponse> {
        unimplemented(request)
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Reply<pb::CreateTokenResponse> {
        unimplemented(request)
    }

    async fn revoke_token(&self, request: Request<pb::RevokeTokenRequest>) -> Reply<()> {
        unimplemented(request)
    }
}
