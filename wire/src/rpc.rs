//! The RPCs of zitadel.auth.v1.AuthService the service implements, named as gRPC names them and
//! routed as grpc-gateway maps their REST forms.

/// The gRPC service the RPCs belong to, as the path prefix of its methods.
pub const GRPC_SERVICE: &str = "/zitadel.auth.v1.AuthService/";

/// One RPC: the phone RPCs, the caller's history of phone events, and the health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rpc {
    SetMyPhone,
    GetMyPhone,
    VerifyMyPhone,
    ResendMyPhoneVerification,
    RemoveMyPhone,
    ListMyUserChanges,
    /// Needs no authentication: answers as soon as the component runs.
    Healthz,
}

/// What a REST path and method lead to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestRoute {
    Rpc(Rpc),
    /// A known path with another method; carries the methods it serves (for `Allow`).
    MethodNotAllowed(&'static str),
    NotFound,
}

/// A REST path, the RPC each of its methods calls, and its `Allow` header.
type RestPath = (&'static str, &'static [(&'static str, Rpc)], &'static str);

/// REST paths, each with the RPCs its methods call.
const REST: [RestPath; 5] = [
    (
        "/auth/v1/users/me/phone",
        &[
            ("GET", Rpc::GetMyPhone),
            ("PUT", Rpc::SetMyPhone),
            ("DELETE", Rpc::RemoveMyPhone),
        ],
        "GET, PUT, DELETE",
    ),
    (
        "/auth/v1/users/me/phone/_verify",
        &[("POST", Rpc::VerifyMyPhone)],
        "POST",
    ),
    (
        "/auth/v1/users/me/phone/_resend_verification",
        &[("POST", Rpc::ResendMyPhoneVerification)],
        "POST",
    ),
    (
        "/auth/v1/users/me/changes/_search",
        &[("POST", Rpc::ListMyUserChanges)],
        "POST",
    ),
    ("/auth/v1/healthz", &[("GET", Rpc::Healthz)], "GET"),
];

impl Rpc {
    pub const ALL: [Rpc; 7] = [
        Rpc::SetMyPhone,
        Rpc::GetMyPhone,
        Rpc::VerifyMyPhone,
        Rpc::ResendMyPhoneVerification,
        Rpc::RemoveMyPhone,
        Rpc::ListMyUserChanges,
        Rpc::Healthz,
    ];

    /// The gRPC method name (`SetMyPhone`), which logs and metrics use too.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::SetMyPhone => "SetMyPhone",
            Rpc::GetMyPhone => "GetMyPhone",
            Rpc::VerifyMyPhone => "VerifyMyPhone",
            Rpc::ResendMyPhoneVerification => "ResendMyPhoneVerification",
            Rpc::RemoveMyPhone => "RemoveMyPhone",
            Rpc::ListMyUserChanges => "ListMyUserChanges",
            Rpc::Healthz => "Healthz",
        }
    }

    /// The RPC a gRPC (or gRPC-Web) request path names.
    pub fn from_grpc_path(path: &str) -> Option<Self> {
        let name = path.strip_prefix(GRPC_SERVICE)?;
        Self::ALL.into_iter().find(|rpc| rpc.name() == name)
    }

    /// The RPC a REST request calls. Paths match exactly, as grpc-gateway's do.
    pub fn from_rest(method: &str, path: &str) -> RestRoute {
        let Some((_, methods, allowed)) = REST.iter().find(|(known, _, _)| *known == path) else {
            return RestRoute::NotFound;
        };
        methods
            .iter()
            .find(|(known, _)| *known == method)
            .map_or(RestRoute::MethodNotAllowed(allowed), |(_, rpc)| {
                RestRoute::Rpc(*rpc)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::{GRPC_SERVICE, RestRoute, Rpc};

    #[test]
    fn grpc_paths_name_their_rpc() {
        for rpc in Rpc::ALL {
            let path = format!("{GRPC_SERVICE}{}", rpc.name());
            assert_eq!(Rpc::from_grpc_path(&path), Some(rpc));
        }
        for path in [
            "/zitadel.auth.v1.AuthService/SetMyEmail",
            "/zitadel.auth.v1.AuthService/",
            "/SetMyPhone",
            "/zitadel.auth.v1.AuthService/SetMyPhone/",
        ] {
            assert_eq!(Rpc::from_grpc_path(path), None, "{path}");
        }
    }

    #[test]
    fn rest_routes_are_grpc_gateways() {
        let phone = "/auth/v1/users/me/phone";
        assert_eq!(
            Rpc::from_rest("PUT", phone),
            RestRoute::Rpc(Rpc::SetMyPhone)
        );
        assert_eq!(
            Rpc::from_rest("GET", phone),
            RestRoute::Rpc(Rpc::GetMyPhone)
        );
        assert_eq!(
            Rpc::from_rest("DELETE", phone),
            RestRoute::Rpc(Rpc::RemoveMyPhone)
        );
        assert_eq!(
            Rpc::from_rest("POST", phone),
            RestRoute::MethodNotAllowed("GET, PUT, DELETE")
        );
        assert_eq!(
            Rpc::from_rest("POST", "/auth/v1/users/me/phone/_verify"),
            RestRoute::Rpc(Rpc::VerifyMyPhone)
        );
        assert_eq!(
            Rpc::from_rest("GET", "/auth/v1/users/me/changes/_search"),
            RestRoute::MethodNotAllowed("POST")
        );
        assert_eq!(
            Rpc::from_rest("GET", "/auth/v1/healthz"),
            RestRoute::Rpc(Rpc::Healthz)
        );
        assert_eq!(
            Rpc::from_rest("PUT", "/auth/v1/users/me/phone/"),
            RestRoute::NotFound
        );
        assert_eq!(Rpc::from_rest("GET", "/"), RestRoute::NotFound);
    }
}
