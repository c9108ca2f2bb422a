// The official @anthropic-ai/sdk package for node (messages) against mockllm.
// node anthropic.mjs SERVER_URL plain|stream|tool|structured|rate_limit
import Anthropic from '@anthropic-ai/sdk';
import { zodOutputFormat } from '@anthropic-ai/sdk/helpers/zod';
import { SCENARIOS, Weather, WEATHER_TOOL_DESCRIPTION, describeError, main } from './common.mjs';

const model = SCENARIOS.anthropic_model;
// The Anthropic SDK adds /v1/messages itself: its base URL is the server's root.
const client = (url) => new Anthropic({ baseURL: url, apiKey: 'sk-matrix', maxRetries: 0, timeout: 30_000 });
const user = (text) => [{ role: 'user', content: text }];

const weatherTool = {
  name: SCENARIOS.tool.tool,
  description: WEATHER_TOOL_DESCRIPTION,
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

await main({
  async plain(url) {
    const reply = await client(url).messages.create({ model, max_tokens: 256, messages: user(SCENARIOS.plain.prompt) });
    return { text: reply.content.map((block) => block.text).join(''), finish: reply.stop_reason };
  },

  async stream(url) {
    const stream = client(url).messages.stream({ model, max_tokens: 256, messages: user(SCENARIOS.plain.prompt) });
    const pieces = [];
    stream.on('text', (delta) => pieces.push(delta));
    const final = await stream.finalMessage();
    return { text: pieces.join(''), chunks: pieces.length, finish: final.stop_reason,
             final_text: final.content.map((block) => block.text).join('') };
  },

  async tool(url) {
    const anthropic = client(url);
    const messages = user(SCENARIOS.tool.prompt);
    const first = await anthropic.messages.create({ model, max_tokens: 256, messages, tools: [weatherTool] });
    const call = first.content.find((block) => block.type === 'tool_use');
    messages.push({ role: 'assistant', content: first.content },
                  { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: SCENARIOS.tool.tool_result }] });
    const second = await anthropic.messages.create({ model, max_tokens: 256, messages, tools: [weatherTool] });
    return {
      finish: first.stop_reason,
      tool: call.name,
      arguments: call.input,
      text: second.content.filter((block) => block.type === 'text').map((block) => block.text).join(''),
    };
  },

  // The SDK's structured-output helper: output_config.format from a zod schema, parsed into parsed_output.
  async structured(url) {
    const reply = await client(url).messages.parse({
      model, max_tokens: 256, messages: user(SCENARIOS.structured.prompt),
      output_config: { format: zodOutputFormat(Weather) } });
    return { parsed: reply.parsed_output };
  },

  async rate_limit(url) {
    try {
      await client(url).messages.create(
        { model, max_tokens: 256, messages: user(SCENARIOS.rate_limit.prompt) }, { headers: { 'X-Mock-Status': '429' } });
    } catch (error) {
      return { ...describeError(error), library_class: error instanceof Anthropic.RateLimitError };
    }
    return { error: null };
  },
});
