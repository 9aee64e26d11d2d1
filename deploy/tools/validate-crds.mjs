// Validates custom resources that kubernetes-validate has no schema for, with the validators of
// the @kubernetes-models packages (deploy/tools/install-chart-tools.sh installs them).
// Input: a JSON array of manifests on stdin. Output: one line per invalid or unknown manifest;
// exit 1 if there is any. These validators check types, required fields and enums; like the API
// server's structural schemas they let unknown fields through.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const modules = process.env.RAE_NODE_MODULES;
if (!modules) {
  console.error("validate-crds: RAE_NODE_MODULES (the node_modules of .tools/node) is not set");
  process.exit(2);
}
// By file: the packages export ES modules only, which require.resolve cannot see.
const load = async (path) => import(pathToFileURL(`${modules}/${path}.js`).href);

const kinds = {
  "monitoring.coreos.com/v1/ServiceMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor"],
  "monitoring.coreos.com/v1/PrometheusRule": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule", "PrometheusRule"],
  "gateway.networking.k8s.io/v1/HTTPRoute": ["@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute", "HTTPRoute"],
  "traefik.io/v1alpha1/Middleware": ["@kubernetes-models/traefik/traefik.io/v1alpha1/Middleware", "Middleware"],
};

const manifests = JSON.parse(readFileSync(0, "utf8"));
let failures = 0;
for (const manifest of manifests) {
  const id = `${manifest.apiVersion}/${manifest.kind}`;
  const name = `${manifest.kind} ${manifest.metadata?.name}`;
  const known = kinds[id];
  if (!known) {
    console.log(`${name}: no schema for ${id}`);
    failures++;
    continue;
  }
  const model = (await load(known[0]))[known[1]];
  try {
    new model(manifest).validate();
  } catch (error) {
    console.log(`${name}: ${error.message}`);
    failures++;
  }
}
process.exit(failures ? 1 : 0);
