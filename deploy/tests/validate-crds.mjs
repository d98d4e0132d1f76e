// Validates the custom resources of a rendered manifest stream against the schemas of
// their CRDs, which kubernetes-validate does not have (it only warns "Couldn't find
// schema" and passes them). The schemas come from the @kubernetes-models npm packages,
// generated from the operators' own CRDs (scripts/ensure-tools.sh crd-models).
//
//   node validate-crds.mjs MODULES_DIR [KIND@API_VERSION...] < docs.json
//
// docs.json: a JSON array of the stream's documents. Every document of a kind in
// KINDS below is validated: types, required fields, enums and patterns. CRD schemas
// allow unknown fields (the API server prunes them), so a misspelt optional field is
// not caught here. Each KIND@API_VERSION argument is a kind kubernetes-validate did
// not know: one that is not in KINDS either fails, so no resource passes unchecked.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// apiVersion -> [package, module path], and the kinds used from it.
const KINDS = {
  "monitoring.coreos.com/v1": {
    module: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js",
    kinds: ["PodMonitor", "ServiceMonitor", "PrometheusRule"],
  },
  "external-secrets.io/v1": {
    module: "@kubernetes-models/external-secrets/external-secrets.io/v1/index.js",
    kinds: ["ExternalSecret", "SecretStore", "ClusterSecretStore"],
  },
};

const [modules, ...unknown] = process.argv.slice(2);
if (!modules) {
  console.error("usage: validate-crds.mjs MODULES_DIR [KIND@API_VERSION...] < docs.json");
  process.exit(2);
}

let failed = 0;
for (const pair of unknown) {
  const [kind, apiVersion] = pair.split("@");
  if (!KINDS[apiVersion]?.kinds.includes(kind)) {
    console.log(
      `${kind} (${apiVersion}): no schema anywhere; add its models to deploy/tests/validate-crds.mjs`,
    );
    failed++;
  }
}

const docs = JSON.parse(readFileSync(0, "utf8")).filter(Boolean);
const loaded = {};
let checked = 0;
for (const doc of docs) {
  const group = KINDS[doc.apiVersion];
  if (!group || !group.kinds.includes(doc.kind)) continue;
  loaded[doc.apiVersion] ??= await import(pathToFileURL(join(modules, group.module)).href);
  const Model = loaded[doc.apiVersion][doc.kind];
  const name = `${doc.kind} ${doc.metadata?.namespace ?? ""}/${doc.metadata?.name ?? "?"}`;
  try {
    new Model(doc).validate();
    checked++;
  } catch (error) {
    console.log(`${name}: ${error.message}`);
    failed++;
  }
}
console.log(`custom resources: ${checked} valid, ${failed} failed`);
process.exit(failed ? 1 : 0);
