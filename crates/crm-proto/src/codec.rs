//! The servers' codec: prost's, except that a request which does not decode is the
//! caller's error. The stock codec answers INTERNAL ("failed to decode Protobuf message"),
//! which reads as a fault of the service and tells a client developer nothing to fix.

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// [`tonic_prost::ProstCodec`] with request decode errors as INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct RequestCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(ProstDecoder::default())
    }
}

#[derive(Debug, Clone)]
pub struct RequestDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|e| not_decodable::<U>(&e))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// What a person can act on: which message, prost's reason (it names the field, e.g.
/// "RegisterCustomerRequest.customer_id: invalid string value: data is not UTF-8
/// encoded"), and the usual causes.
fn not_decodable<U>(e: &Status) -> Status {
    let name = std::any::type_name::<U>().rsplit("::").next().unwrap_or("");
    Status::invalid_argument(format!(
        "the request is not a valid crm.v1.{name} message ({}): strings must be UTF-8, and the \
         client must be built from the service's proto files (server reflection serves them)",
        e.message()
    ))
}
