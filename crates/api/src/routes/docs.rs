//! The OpenAPI 3 document, generated from the handlers' annotations and the DTO types
//! (`utoipa`), and a self-contained HTML page that renders it: no CDN, no external script,
//! so it works on an air-gapped host and under a strict Content-Security-Policy.

use axum::Json;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Sightline API", description = "Real-time video inference: runs, batch jobs, configs, models, events, single-image inference."),
    paths(
        crate::routes::probes::health,
        crate::routes::probes::ready,
        crate::routes::probes::version,
        crate::routes::probes::metrics,
        crate::routes::runs::create_run,
        crate::routes::runs::list_runs,
        crate::routes::runs::get_run,
        crate::routes::runs::stop_run,
        crate::routes::runs::start_run,
        crate::routes::runs::delete_run,
        crate::routes::runs::apply_config,
        crate::routes::jobs::create_job,
        crate::routes::jobs::list_jobs,
        crate::routes::jobs::get_job,
        crate::routes::jobs::job_summary,
        crate::routes::jobs::cancel_job,
        crate::routes::jobs::delete_job,
        crate::routes::jobs::job_video,
        crate::routes::media::snapshot,
        crate::routes::media::preview,
        crate::routes::configs::put_config,
        crate::routes::configs::list_configs,
        crate::routes::configs::get_config,
        crate::routes::configs::list_versions,
        crate::routes::configs::schema,
        crate::routes::events::list_events,
        crate::routes::events::stream_events,
        crate::routes::plates::search_plates,
        crate::routes::recordings::get_event,
        crate::routes::recordings::crop,
        crate::routes::recordings::event_snapshot,
        crate::routes::recordings::list_recordings,
        crate::routes::recordings::download_segment,
        crate::routes::recordings::clip,
        crate::routes::system::system,
        crate::routes::models::upload_model,
        crate::routes::models::list_models,
        crate::routes::models::get_model,
        crate::routes::models::delete_model,
        crate::infer::infer,
    ),
    components(schemas(crate::infer::upscale::UpscaleResponse, crate::infer::anpr::AnprResponse, crate::error::ErrorBody)),
    modifiers(&Bearer, &ContractResponses),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Makes the document say what the server does beyond each handler's own annotations: which
/// operations are open (`/health` always; `/ready` and `/metrics` when the server opens its
/// probes, so a token is optional there), and the error answers every operation can give —
/// `401` (no or bad token) and `403` (role too low) where a token is needed, `400` (malformed
/// path, query or body) and `422` (a field that fails validation) where there is input,
/// `415` (a body of another content type) and `413` where a body is taken — each with the
/// `ErrorBody` shape.
struct ContractResponses;

impl Modify for ContractResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let secured = match path.as_str() {
                    "/health" => {
                        op.security = Some(Vec::new());
                        false
                    }
                    "/ready" | "/metrics" => {
                        op.security = Some(vec![
                            SecurityRequirement::default(),
                            SecurityRequirement::new("bearer", Vec::<String>::new()),
                        ]);
                        true
                    }
                    _ => true,
                };
                let has_input = op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || op.request_body.is_some();
                let has_body = op.request_body.is_some();
                let mut add = |code: &str, why: &str| {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| error_response(why));
                };
                if secured {
                    add("401", "no token, or an unknown, expired or revoked one");
                    add("403", "the token's role may not do this");
                }
                if has_input {
                    add("400", "a malformed path, query or body");
                    add(
                        "422",
                        "a parameter or field failed validation (`details` names each one)",
                    );
                }
                if has_body {
                    add("413", "the body is larger than the server accepts");
                    add(
                        "415",
                        "the body has a content type this operation does not take",
                    );
                }
            }
        }
    }
}

fn error_response(
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::response::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// The OpenAPI document as JSON, with the pipeline config's own JSON Schema (the one the
/// server validates against, unknown fields refused) as the body of `/v1/configs/{name}`.
pub fn openapi_json() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    embed_pipeline_config_schema(&mut doc);
    doc
}

/// Moves the schemars document of `PipelineConfig` under `components/schemas` (its
/// definitions as `PipelineConfig_<Name>`, references rewritten) and points the config
/// operations' JSON bodies at it.
fn embed_pipeline_config_schema(doc: &mut serde_json::Value) {
    use serde_json::Value;
    fn rewrite(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get_mut("$ref")
                    && let Some(name) = r.strip_prefix("#/definitions/")
                {
                    *r = format!("#/components/schemas/PipelineConfig_{name}");
                }
                map.values_mut().for_each(rewrite);
            }
            Value::Array(items) => items.iter_mut().for_each(rewrite),
            _ => {}
        }
    }
    let mut root = sightline_config::PipelineConfig::json_schema();
    rewrite(&mut root);
    let Some(obj) = root.as_object_mut() else {
        return;
    };
    obj.remove("$schema");
    let defs = obj.remove("definitions");
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if let Some(Value::Object(defs)) = defs {
        for (name, schema) in defs {
            schemas.insert(format!("PipelineConfig_{name}"), schema);
        }
    }
    schemas.insert("PipelineConfig".into(), root);
    for method in ["post", "put"] {
        if let Some(schema) = doc.pointer_mut(&format!(
            "/paths/~1v1~1configs~1{{name}}/{method}/requestBody/content/application~1json/schema"
        )) {
            *schema = serde_json::json!({"$ref": "#/components/schemas/PipelineConfig"});
        }
    }
}

pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(openapi_json()),
    )
}

pub(crate) async fn docs_page() -> Html<&'static str> {
    Html(DOCS_HTML)
}

/// Renders `/openapi.json` as a list of operations with their parameters, bodies and
/// responses. Plain DOM code, no dependencies.
const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sightline API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:60em;padding:1em;color:#222}
h1{margin-bottom:.2em} .op{border:1px solid #ddd;border-radius:6px;margin:.6em 0}
.op summary{cursor:pointer;padding:.5em;display:flex;gap:.8em;align-items:center}
.m{font-weight:bold;text-transform:uppercase;width:4.5em;text-align:center;border-radius:4px;color:#fff;padding:.1em}
.get{background:#2a7ab0}.post{background:#2f9e44}.put{background:#b7791f}.delete{background:#c92a2a}
code,pre{font-family:ui-monospace,monospace;font-size:12px} pre{background:#f6f6f6;padding:.6em;overflow:auto}
.body{padding:0 1em 1em} h3{font-size:13px;margin:.8em 0 .2em} table{border-collapse:collapse} td{padding:.1em .6em .1em 0;vertical-align:top}
</style></head><body>
<h1>Sightline API</h1><p>Machine-readable: <a href="/openapi.json">/openapi.json</a>. Authenticate with <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<div id="ops">Loading…</div>
<script>
const el=(t,a={},...c)=>{const e=document.createElement(t);for(const[k,v]of Object.entries(a))e.setAttribute(k,v);for(const x of c)e.append(x);return e};
const refName=r=>r&&r.$ref?r.$ref.split('/').pop():null;
fetch('/openapi.json').then(r=>r.json()).then(doc=>{
 const root=document.getElementById('ops');root.textContent='';
 const schemas=(doc.components||{}).schemas||{};
 const show=s=>{const n=refName(s);return JSON.stringify(n?{[n]:schemas[n]}:s,null,2)};
 for(const[path,item]of Object.entries(doc.paths)){for(const[m,op]of Object.entries(item)){
  const d=el('details',{class:'op'});
  d.append(el('summary',{},el('span',{class:'m '+m},m),el('code',{},path),el('span',{},op.summary||op.description||'')));
  const b=el('div',{class:'body'});
  if(op.description)b.append(el('p',{},op.description));
  if(op.parameters&&op.parameters.length){const t=el('table');for(const p of op.parameters)t.append(el('tr',{},el('td',{},el('code',{},p.name)),el('td',{},p.in),el('td',{},p.description||'')));b.append(el('h3',{},'Parameters'),t)}
  if(op.requestBody){for(const[ct,c]of Object.entries(op.requestBody.content||{}))b.append(el('h3',{},'Body '+ct),el('pre',{},show(c.schema)))}
  b.append(el('h3',{},'Responses'));
  for(const[code,r]of Object.entries(op.responses||{})){b.append(el('div',{},el('b',{},code+' '),r.description||''));for(const c of Object.values(r.content||{}))if(c.schema)b.append(el('pre',{},show(c.schema)))}
  d.append(b);root.append(d)}}
}).catch(e=>{document.getElementById('ops').textContent='Could not load /openapi.json: '+e});
</script></body></html>"#;
