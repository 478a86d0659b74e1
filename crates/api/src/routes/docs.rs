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
    info(title = "Sightline API", description = "Real-time video inference: runs, configs, models, events, single-image inference."),
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
        crate::routes::media::snapshot,
        crate::routes::media::preview,
        crate::routes::configs::put_config,
        crate::routes::configs::list_configs,
        crate::routes::configs::get_config,
        crate::routes::configs::list_versions,
        crate::routes::configs::schema,
        crate::routes::events::list_events,
        crate::routes::events::stream_events,
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
    components(schemas(crate::infer::upscale::UpscaleResponse)),
    modifiers(&Bearer),
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

/// The OpenAPI document as JSON.
pub fn openapi_json() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
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
