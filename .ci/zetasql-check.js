// Analyzes every statement shape the BigQuery adapter sends with ZetaSQL, Google's
// GoogleSQL front end (npm @fivetrandevelopers/zetasql 1.13.0: a prebuilt ZetaSQL
// server with a gRPC client). Each case (written by `cargo test --test zetasql_shapes`)
// is parsed and type-checked against a catalog holding the table (its schema turned into
// ZetaSQL types) and the typed query parameters exactly as the adapter sends them, with
// the language options closest to BigQuery the API offers: every released language
// feature, PRODUCT_EXTERNAL (GoogleSQL's external type system: INT64, FLOAT64, no
// INT32/UINT), named parameters, MERGE and query statements only.
//
// Cases marked `valid` must be accepted; `invalid` controls (a JSON or GEOGRAPHY key, a
// column that does not exist, a syntax error, a row field of the wrong type, …) must be
// refused with the expected words, so the check proves it checks. Any wrong verdict
// exits 1.
//
// Usage: node zetasql-check.js <node_modules prefix> <cases dir>

'use strict';
const fs = require('fs');
const net = require('net');
const path = require('path');

const [prefix, casesDir] = process.argv.slice(2);
const zetasql = require(path.resolve(prefix, 'node_modules/@fivetrandevelopers/zetasql'));
const { ZetaSQLClient, runServer, terminateServer } = zetasql;

// BigQuery type names (tables.get and QueryParameterType spellings) → ZetaSQL TypeKind.
const KINDS = {
  STRING: 'TYPE_STRING', BYTES: 'TYPE_BYTES', INT64: 'TYPE_INT64', INTEGER: 'TYPE_INT64',
  FLOAT64: 'TYPE_DOUBLE', FLOAT: 'TYPE_DOUBLE', NUMERIC: 'TYPE_NUMERIC',
  BIGNUMERIC: 'TYPE_BIGNUMERIC', BOOL: 'TYPE_BOOL', BOOLEAN: 'TYPE_BOOL',
  TIMESTAMP: 'TYPE_TIMESTAMP', DATE: 'TYPE_DATE', TIME: 'TYPE_TIME',
  DATETIME: 'TYPE_DATETIME', GEOGRAPHY: 'TYPE_GEOGRAPHY', JSON: 'TYPE_JSON',
  INTERVAL: 'TYPE_INTERVAL',
};

function scalar(name) {
  const kind = KINDS[name.toUpperCase()];
  if (!kind) throw new Error(`no ZetaSQL type for ${name}`);
  return { typeKind: kind };
}

// A table column (TableFieldSchema) → TypeProto.
function fieldType(f) {
  const t = f.type.toUpperCase();
  const element = (t === 'RECORD' || t === 'STRUCT')
    ? { typeKind: 'TYPE_STRUCT', structType: { field: f.fields.map(s => ({ fieldName: s.name, fieldType: fieldType(s) })) } }
    : scalar(t);
  return (f.mode || '').toUpperCase() === 'REPEATED'
    ? { typeKind: 'TYPE_ARRAY', arrayType: { elementType: element } }
    : element;
}

// A QueryParameterType → TypeProto.
function parameterType(p) {
  if (p.type === 'ARRAY') return { typeKind: 'TYPE_ARRAY', arrayType: { elementType: parameterType(p.arrayType) } };
  if (p.type === 'STRUCT') {
    return { typeKind: 'TYPE_STRUCT', structType: { field: p.structTypes.map(s => ({ fieldName: s.name, fieldType: parameterType(s.type) })) } };
  }
  return scalar(p.type);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function main() {
  const files = fs.readdirSync(casesDir).filter(f => f.endsWith('.json')).sort();
  if (files.length === 0) throw new Error(`no cases in ${casesDir}`);
  const port = await freePort();
  runServer(port).catch(() => {});
  ZetaSQLClient.init(port);
  const client = ZetaSQLClient.getInstance();
  if (!(await client.testConnection())) throw new Error('the ZetaSQL server did not start');
  const language = await client.getLanguageOptions({ maximumFeatures: true });
  language.productMode = 'PRODUCT_EXTERNAL';
  language.supportedStatementKinds = ['RESOLVED_MERGE_STMT', 'RESOLVED_QUERY_STMT'];

  let wrong = 0;
  for (const file of files) {
    const c = JSON.parse(fs.readFileSync(path.join(casesDir, file), 'utf8'));
    const catalog = {
      name: 'bigquery',
      table: [{ name: c.table, column: c.fields.map(f => ({ name: f.name, type: fieldType(f) })) }],
      builtinFunctionOptions: { languageOptions: language },
    };
    const options = {
      languageOptions: language,
      parameterMode: 'PARAMETER_NAMED',
      queryParameters: c.params.map(p => ({ name: p.name, type: parameterType(p.parameterType) })),
      errorMessageMode: 'ERROR_MESSAGE_ONE_LINE',
    };
    let refusal = null;
    try {
      await client.analyze({ sqlStatement: c.sql, simpleCatalog: catalog, options });
    } catch (e) {
      refusal = e.details || e.message;
    }
    let ok;
    if (c.expect === 'valid') ok = refusal === null;
    else ok = refusal !== null && refusal.includes(c.refusal);
    const verdict = refusal === null ? 'accepted' : `refused: ${refusal}`;
    console.log(`${ok ? 'ok   ' : 'WRONG'} ${c.expect.padEnd(7)} ${c.name} — ${verdict}`);
    if (!ok) {
      wrong += 1;
      console.log(`      SQL: ${c.sql.replace(/\n/g, ' ')}`);
    }
  }
  terminateServer();
  console.log(`zetasql: ${files.length} statements analyzed, ${wrong} wrong verdict(s)`);
  process.exit(wrong === 0 ? 0 : 1);
}

main().catch(e => {
  console.error(`zetasql: ${e.stack || e}`);
  try { terminateServer(); } catch (_) { /* not started */ }
  process.exit(2);
});
