//! The OpenAPI description of a participant's step endpoints, built from its [`Step`].
//!
//! `#[utoipa::path]` describes one concrete handler and cannot take a generic one; describing
//! the generic handlers here, from the step's own `Request` and `Record` types, keeps the
//! document and the endpoints from drifting apart (the schemas are those the handlers
//! (de)serialize, the path the one they serve). What types cannot say, each service's words for
//! its operations, comes from [`Step::DOCS`].

use utoipa::{
    ToSchema,
    openapi::{
        Content, HttpMethod, OpenApi, OpenApiBuilder, Ref, RefOr, Required, ResponseBuilder, ResponsesBuilder,
        path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItemBuilder},
        request_body::RequestBodyBuilder,
        schema::{ComponentsBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type},
    },
};

use super::Step;
use crate::error::{PROBLEM_JSON, Problem, ReadErrors, StepErrors};

/// What a step's endpoints are documented with beyond the step's types.
#[derive(Debug, Clone, Copy)]
pub struct StepDocs {
    /// The `PUT`; its answer is the `201`'s description.
    pub act: OperationDocs,
    /// The `PUT`'s refusals besides those every step endpoint may give ([`StepErrors`]), as
    /// status and description: at least the 409 of a compensated order, and the service's own.
    pub refusals: &'static [(u16, &'static str)],
    /// The `DELETE` (the compensation); its answer is the `200`'s description.
    pub undo: OperationDocs,
    /// The `GET`; its answer is the `200`'s description.
    pub read: OperationDocs,
}

/// One operation's words.
#[derive(Debug, Clone, Copy)]
pub struct OperationDocs {
    /// The operation id (also the name its handler's span is exported under).
    pub id: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// What its success answer means.
    pub answer: &'static str,
}

/// The description of a `PUT` answered from the ledger, the same for every step.
const REPLAY: &str = "Replay: the stored result, nothing changed";

/// The step's endpoints at `path`, tagged `tag`, with the schemas they refer to.
pub(super) fn document<S: Step>(tag: &str, path: &str) -> OpenApi {
    let docs = S::DOCS;
    let record = || Content::new(Some(Ref::from_schema_name(S::Record::name())));
    let request = RequestBodyBuilder::new()
        .content("application/json", Content::new(Some(Ref::from_schema_name(S::Request::name()))))
        .required(Some(Required::True))
        .build();
    let act_responses = docs
        .refusals
        .iter()
        .fold(
            ResponsesBuilder::new()
                .response(
                    "201",
                    ResponseBuilder::new().description(docs.act.answer).content("application/json", record()),
                )
                .response("200", ResponseBuilder::new().description(REPLAY).content("application/json", record())),
            |responses, (status, description)| {
                let problem = Content::new(Some(Ref::from_schema_name(Problem::name())));
                responses.response(
                    status.to_string(),
                    ResponseBuilder::new().description(*description).content(PROBLEM_JSON, problem),
                )
            },
        )
        .responses_from_into_responses::<StepErrors>();
    let answered = |description: &str| {
        ResponsesBuilder::new()
            .response("200", ResponseBuilder::new().description(description).content("application/json", record()))
    };
    let item = PathItemBuilder::new()
        .operation(
            HttpMethod::Get,
            operation(tag, docs.read)
                .responses(answered(docs.read.answer).responses_from_into_responses::<ReadErrors>()),
        )
        .operation(HttpMethod::Put, operation(tag, docs.act).request_body(Some(request)).responses(act_responses))
        .operation(
            HttpMethod::Delete,
            operation(tag, docs.undo)
                .responses(answered(docs.undo.answer).responses_from_into_responses::<StepErrors>()),
        )
        .build();
    let mut schemas = Vec::new();
    with_dependencies::<Problem>(&mut schemas);
    with_dependencies::<S::Request>(&mut schemas);
    with_dependencies::<S::Record>(&mut schemas);
    OpenApiBuilder::new()
        .paths(utoipa::openapi::PathsBuilder::new().path(path, item))
        .components(Some(ComponentsBuilder::new().schemas_from_iter(schemas).build()))
        .build()
}

/// An operation on one order: its id, summary and tag, and the `order_id` path parameter.
fn operation(tag: &str, docs: OperationDocs) -> OperationBuilder {
    let uuid =
        ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)));
    let order_id = ParameterBuilder::new()
        .name("order_id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("The order"))
        .schema(Some(uuid));
    Operation::builder().tag(tag).summary(Some(docs.summary)).operation_id(Some(docs.id)).parameter(order_id)
}

/// `T`'s schema and every schema it refers to, as a document's components need them.
fn with_dependencies<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::Value;
    use sqlx::PgConnection;
    use uuid::Uuid;

    use super::{OperationDocs, StepDocs, document};
    use crate::{
        AppError,
        api::{Payment, PaymentRequest},
        ledger::StepTable,
        step::{OutcomeCounter, Step},
    };

    /// A step that is only ever described, never run.
    struct Described;

    impl Step for Described {
        type Request = PaymentRequest;
        type Record = Payment;
        const TABLE: StepTable = StepTable("payments");
        const ACT_COUNTER: OutcomeCounter = OutcomeCounter("captures_total");
        const DONE: &'static str = "captured";
        const UNDO_COUNTER: OutcomeCounter = OutcomeCounter("refunds_total");
        const UNDONE: &'static str = "refunded";
        const RECORD: &'static str = "payment";
        const DOCS: StepDocs = StepDocs {
            act: OperationDocs { id: "capture", summary: "Captures.", answer: "Captured" },
            refusals: &[(402, "Declined"), (409, "Already refunded")],
            undo: OperationDocs { id: "refund", summary: "Refunds.", answer: "Refunded" },
            read: OperationDocs { id: "get_payment", summary: "The payment.", answer: "The payment" },
        };

        async fn effect(
            &self,
            _: &mut PgConnection,
            _: Uuid,
            _: &PaymentRequest,
            _: chrono::DateTime<chrono::Utc>,
        ) -> Result<Value, AppError> {
            Err(anyhow::anyhow!("only described").into())
        }

        async fn undo(&self, _: &mut PgConnection, _: Uuid, _: PaymentRequest) -> Result<(), AppError> {
            Err(anyhow::anyhow!("only described").into())
        }

        async fn read(&self, _: &mut PgConnection, _: Uuid) -> Result<Option<Payment>, sqlx::Error> {
            Ok(None)
        }
    }

    #[test]
    fn a_steps_endpoints_are_described_from_its_types_and_its_words() {
        let doc = serde_json::to_value(document::<Described>("payment", "/payments/{order_id}")).unwrap();
        let item = &doc["paths"]["/payments/{order_id}"];
        let statuses =
            |method: &str| item[method]["responses"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(statuses("put"), ["200", "201", "400", "402", "409", "413", "415", "422", "503"]);
        assert_eq!(statuses("delete"), ["200", "400", "413", "415", "422", "503"]);
        assert_eq!(statuses("get"), ["200", "400", "404", "503"]);
        for (method, id) in [("put", "capture"), ("delete", "refund"), ("get", "get_payment")] {
            assert_eq!(item[method]["operationId"], id);
            assert_eq!(item[method]["tags"], serde_json::json!(["payment"]));
            assert_eq!(item[method]["parameters"][0]["name"], "order_id");
            assert_eq!(
                item[method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Payment"
            );
        }
        assert_eq!(item["put"]["responses"]["201"]["description"], "Captured");
        assert_eq!(item["put"]["responses"]["402"]["description"], "Declined");
        assert_eq!(
            item["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/PaymentRequest"
        );
        let schemas = doc["components"]["schemas"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        // The request's and the record's schemas, with those they refer to.
        assert_eq!(schemas, ["AmountCents", "CustomerId", "Payment", "PaymentRequest", "PaymentStatus", "Problem"]);
    }
}
