// The official openai package for node (chat completions) against mockllm: its OpenAI client, or its
// AzureOpenAI client (/openai/deployments/{model}/chat/completions?api-version=..., the api-key header).
// node openai.mjs SERVER_URL plain|stream|tool|structured|rate_limit [azure]
import OpenAI, { AzureOpenAI } from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { SCENARIOS, Weather, WEATHER_TOOL_DESCRIPTION, describeError, main } from './common.mjs';

const model = SCENARIOS.openai_model;
const client = (url, variant) => variant === 'azure'
  ? new AzureOpenAI({ endpoint: url, apiVersion: '2024-10-21', apiKey: 'azure-matrix', maxRetries: 0, timeout: 30_000 })
  : new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-matrix', maxRetries: 0, timeout: 30_000 });
const user = (text) => [{ role: 'user', content: text }];

const weatherTool = {
  type: 'function',
  function: {
    name: SCENARIOS.tool.tool,
    description: WEATHER_TOOL_DESCRIPTION,
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

await main({
  async plain(url, variant) {
    const reply = await client(url, variant).chat.completions.create({ model, messages: user(SCENARIOS.plain.prompt) });
    return { text: reply.choices[0].message.content, finish: reply.choices[0].finish_reason };
  },

  async stream(url, variant) {
    const stream = await client(url, variant).chat.completions.create({
      model, messages: user(SCENARIOS.plain.prompt), stream: true, stream_options: { include_usage: true } });
    const pieces = [];
    let finish = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice?.delta?.content) pieces.push(choice.delta.content);
      if (choice?.finish_reason) finish = choice.finish_reason;
    }
    return { text: pieces.join(''), chunks: pieces.length, finish };
  },

  async tool(url, variant) {
    const openai = client(url, variant);
    const messages = user(SCENARIOS.tool.prompt);
    const first = await openai.chat.completions.create({ model, messages, tools: [weatherTool] });
    const asked = first.choices[0].message;
    const call = asked.tool_calls[0];
    messages.push(asked, { role: 'tool', tool_call_id: call.id, content: SCENARIOS.tool.tool_result });
    const second = await openai.chat.completions.create({ model, messages, tools: [weatherTool] });
    return {
      finish: first.choices[0].finish_reason,
      tool: call.function.name,
      arguments: JSON.parse(call.function.arguments),
      text: second.choices[0].message.content,
    };
  },

  async structured(url, variant) {
    const reply = await client(url, variant).chat.completions.parse({
      model, messages: user(SCENARIOS.structured.prompt), response_format: zodResponseFormat(Weather, 'weather') });
    return { parsed: reply.choices[0].message.parsed };
  },

  async rate_limit(url, variant) {
    try {
      await client(url, variant).chat.completions.create(
        { model, messages: user(SCENARIOS.rate_limit.prompt) }, { headers: { 'X-Mock-Status': '429' } });
    } catch (error) {
      return { ...describeError(error), library_class: error instanceof OpenAI.RateLimitError };
    }
    return { error: null };
  },
}, [undefined, 'azure']);
