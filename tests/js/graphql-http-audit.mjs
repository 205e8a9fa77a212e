// Runs the graphql-http server audits (the GraphQL-over-HTTP
// specification's own conformance suite) against the URL in argv[2] and
// prints one line: {"audits": [{"id", "name", "status", "reason"}, ...]}.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
const results = [];
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  results.push({
    id: result.id,
    name: result.name,
    status: result.status,
    reason: result.status === 'ok' ? undefined : result.reason,
  });
}
process.stdout.write(JSON.stringify({ audits: results }) + '\n');
