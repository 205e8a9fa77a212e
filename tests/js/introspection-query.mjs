// Prints the introspection query GraphiQL sends, as {"query": ...} on one line.
import { getIntrospectionQuery } from 'graphql';

const query = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
});
process.stdout.write(JSON.stringify({ query }) + '\n');
