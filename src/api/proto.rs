//! Protobuf messages of the phone RPCs (field numbers from REFERENCE.md) and of
//! google.rpc.Status, for the gRPC and gRPC-Web encodings.

use super::phone::{Details, PhoneView};
use crate::error;
use crate::time;

#[derive(Clone, PartialEq, prost::Message)]
pub struct SetMyPhoneRequest {
    #[prost(string, tag = "1")]
    pub phone: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct VerifyMyPhoneRequest {
    #[prost(string, tag = "1")]
    pub code: String,
}

/// GetMyPhoneRequest, ResendMyPhoneVerificationRequest and RemoveMyPhoneRequest have no fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EmptyRequest {}

/// google.protobuf.Timestamp
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// zitadel.v1.ObjectDetails
#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectDetails {
    #[prost(uint64, tag = "1")]
    pub sequence: u64,
    #[prost(message, optional, tag = "2")]
    pub creation_date: Option<Timestamp>,
    #[prost(message, optional, tag = "3")]
    pub change_date: Option<Timestamp>,
    #[prost(string, tag = "4")]
    pub resource_owner: String,
}

/// SetMyPhoneResponse, VerifyMyPhoneResponse, ResendMyPhoneVerificationResponse and
/// RemoveMyPhoneResponse share this shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DetailsResponse {
    #[prost(message, optional, tag = "1")]
    pub details: Option<ObjectDetails>,
}

/// zitadel.user.v1.Phone
#[derive(Clone, PartialEq, prost::Message)]
pub struct Phone {
    #[prost(string, tag = "1")]
    pub phone: String,
    #[prost(bool, tag = "2")]
    pub is_phone_verified: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetMyPhoneResponse {
    #[prost(message, optional, tag = "1")]
    pub details: Option<ObjectDetails>,
    #[prost(message, optional, tag = "2")]
    pub phone: Option<Phone>,
}

/// google.protobuf.Any
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// google.rpc.Status
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// zitadel.v1.ErrorDetail
#[derive(Clone, PartialEq, prost::Message)]
pub struct ErrorDetail {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub message: String,
}

pub const ERROR_DETAIL_TYPE: &str = "type.googleapis.com/zitadel.v1.ErrorDetail";

impl From<time::Timestamp> for Timestamp {
    fn from(t: time::Timestamp) -> Self {
        // Nanoseconds are below 10^9, which fits an i32.
        Timestamp {
            seconds: t.seconds,
            nanos: i32::try_from(t.nanos).unwrap_or(0),
        }
    }
}

impl From<Details> for ObjectDetails {
    fn from(d: Details) -> Self {
        ObjectDetails {
            sequence: d.sequence,
            creation_date: Some(d.creation_date.into()),
            change_date: Some(d.change_date.into()),
            resource_owner: d.resource_owner,
        }
    }
}

impl From<Option<PhoneView>> for Phone {
    fn from(view: Option<PhoneView>) -> Self {
        let view = view.unwrap_or(PhoneView {
            phone: String::new(),
            is_phone_verified: false,
        });
        Phone {
            phone: view.phone,
            is_phone_verified: view.is_phone_verified,
        }
    }
}

impl From<&error::Status> for Status {
    fn from(status: &error::Status) -> Self {
        let details = status
            .detail
            .iter()
            .map(|detail| Any {
                type_url: ERROR_DETAIL_TYPE.into(),
                value: prost::Message::encode_to_vec(&ErrorDetail {
                    id: detail.id.into(),
                    message: detail.message.clone(),
                }),
            })
            .collect();
        Status {
            code: status.code as i32,
            message: status.message.clone(),
            details,
        }
    }
}
