// Generated from styleforge's OpenAPI document (GET /v1/openapi.json) by
// `styleforge_server::openapi::client_module`. Do not edit: regenerate with
// STYLEFORGE_BLESS=1 cargo test --release --workspace --test service web::

// operationId: [method, path, path parameters, query parameters]
export const OPERATIONS = Object.freeze({
  cancel_batch: ["POST", "/v1/batches/{id}/cancel", ["id"], []],
  cancel_job: ["POST", "/v1/jobs/{id}/cancel", ["id"], []],
  create_batch: ["POST", "/v1/batches", [], []],
  create_preference: ["POST", "/v1/preferences", [], []],
  create_result_link: ["POST", "/v1/results/{id}/links", ["id"], []],
  create_training: ["POST", "/v1/trainings", [], []],
  delete_image: ["DELETE", "/v1/images/{id}", ["id"], []],
  delete_style: ["DELETE", "/v1/styles/{name}", ["name"], []],
  detect_faces: ["POST", "/v1/faces", [], []],
  generator_samples: ["GET", "/v1/generators/{name}/samples", ["name"], ["n", "seed", "interpolate"]],
  get_batch: ["GET", "/v1/batches/{id}", ["id"], []],
  get_batch_results: ["GET", "/v1/batches/{id}/results.zip", ["id"], []],
  get_image: ["GET", "/v1/images/{id}", ["id"], []],
  get_image_info: ["GET", "/v1/images/{id}/info", ["id"], []],
  get_image_thumbnail: ["GET", "/v1/images/{id}/thumbnail", ["id"], ["size"]],
  get_job: ["GET", "/v1/jobs/{id}", ["id"], []],
  get_job_result: ["GET", "/v1/jobs/{id}/result", ["id"], []],
  get_public_result: ["GET", "/v1/public/results/{id}", ["id"], ["expires", "kid", "sig"]],
  get_result: ["GET", "/v1/results/{id}", ["id"], []],
  get_result_info: ["GET", "/v1/results/{id}/info", ["id"], []],
  get_style: ["GET", "/v1/styles/{name}", ["name"], []],
  get_style_onnx: ["GET", "/v1/styles/{name}/onnx", ["name"], []],
  get_style_thumbnail: ["GET", "/v1/styles/{name}/thumbnail", ["name"], ["size", "image"]],
  get_webhook_secret: ["GET", "/v1/webhook-secret", [], []],
  healthz: ["GET", "/healthz", [], []],
  job_events: ["GET", "/v1/jobs/{id}/events", ["id"], []],
  list_history: ["GET", "/v1/history", [], ["limit", "cursor"]],
  list_images: ["GET", "/v1/images", [], ["limit", "cursor"]],
  list_job_deliveries: ["GET", "/v1/jobs/{id}/deliveries", ["id"], []],
  list_methods: ["GET", "/v1/methods", [], []],
  list_ratings: ["GET", "/v1/ratings", [], ["style", "method"]],
  list_styles: ["GET", "/v1/styles", [], ["q", "method", "sort"]],
  live: ["GET", "/v1/live", [], ["style", "method", "model", "strength", "preserve_color", "temporal_weight"]],
  metrics: ["GET", "/metrics", [], []],
  openapi: ["GET", "/v1/openapi.json", [], []],
  preference_stats: ["GET", "/v1/stats/preferences", [], ["style", "method"]],
  rate_result: ["PUT", "/v1/results/{id}/rating", ["id"], []],
  rating_stats: ["GET", "/v1/stats/ratings", [], ["style", "method"]],
  readyz: ["GET", "/readyz", [], []],
  rotate_webhook_secret: ["POST", "/v1/webhook-secret", [], []],
  stylize: ["POST", "/v1/stylize", [], []],
  upload_image: ["POST", "/v1/images", [], []],
  upload_model: ["POST", "/v1/models", [], ["name", "title", "tags", "description", "license", "source_url", "input_range", "output_range", "channels", "size_multiple"]],
  upload_style: ["POST", "/v1/styles", [], ["title", "tags", "description"]],
});

// The method and URL of an operation: `params` fill the path's `{name}`s and the rest go
// to the query string (empty values left out). An operation or parameter the document does
// not have is an error.
export function route(operationId, params = {}) {
  const op = OPERATIONS[operationId];
  if (!op) throw new Error(`no operation ${operationId} in the API`);
  const [method, template, inPath, inQuery] = op;
  let path = template;
  for (const name of inPath) {
    if (params[name] === undefined || params[name] === null) throw new Error(`${operationId} needs ${name}`);
    path = path.replace(`{${name}}`, encodeURIComponent(String(params[name])));
  }
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (inPath.includes(name)) continue;
    if (!inQuery.includes(name)) throw new Error(`${operationId} has no parameter ${name}`);
    if (value !== undefined && value !== null && value !== "") query.append(name, String(value));
  }
  const q = query.toString();
  return { method, url: q ? `${path}?${q}` : path };
}

// The URL of an operation (see `route`).
export function url(operationId, params = {}) {
  return route(operationId, params).url;
}
