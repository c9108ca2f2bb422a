// The Vercel AI SDK (ai, with @ai-sdk/openai, @ai-sdk/anthropic, @ai-sdk/google and @ai-sdk/azure) against mockllm.
// node ai-sdk.mjs SERVER_URL plain|stream|tool|structured|rate_limit
//   openai-chat|openai-responses|anthropic|google|azure-responses|azure-chat
import { createAnthropic } from '@ai-sdk/anthropic';
import { createAzure } from '@ai-sdk/azure';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { createOpenAI } from '@ai-sdk/openai';
import { APICallError, Output, generateText, stepCountIs, streamText, tool } from 'ai';
import { CityArgs, SCENARIOS, Weather, WEATHER_TOOL_DESCRIPTION, describeError, main } from './common.mjs';

const PROVIDERS = {
  // /v1/chat/completions
  'openai-chat': (url) => createOpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-matrix' }).chat(SCENARIOS.openai_model),
  // /v1/responses: what @ai-sdk/openai uses by default
  'openai-responses': (url) => createOpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-matrix' }).responses(SCENARIOS.openai_model),
  // /v1/messages: unlike Anthropic's own SDK, @ai-sdk/anthropic's base URL includes /v1
  anthropic: (url) => createAnthropic({ baseURL: `${url}/v1`, apiKey: 'sk-matrix' })(SCENARIOS.anthropic_model),
  // /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse, the key in x-goog-api-key
  google: (url) => createGoogleGenerativeAI({ baseURL: `${url}/v1beta`, apiKey: 'matrix-key' })(SCENARIOS.gemini_model),
  // /openai/v1/responses: what @ai-sdk/azure uses by default (a base URL ending in /openai/v1 is used as it is)
  'azure-responses': (url) => createAzure({ baseURL: `${url}/openai/v1`, apiKey: 'azure-matrix' })(SCENARIOS.openai_model),
  // /openai/deployments/{deployment}/chat/completions?api-version=...: Azure's own stream shapes
  'azure-chat': (url) => createAzure({ baseURL: `${url}/openai`, apiKey: 'azure-matrix', useDeploymentBasedUrls: true,
                                      apiVersion: '2024-10-21' }).chat(SCENARIOS.openai_model),
};

await main({
  async plain(url, provider) {
    const result = await generateText({ model: PROVIDERS[provider](url), prompt: SCENARIOS.plain.prompt, maxRetries: 0 });
    return { text: result.text, finish: result.finishReason };
  },

  async stream(url, provider) {
    const errors = [];
    const result = streamText({ model: PROVIDERS[provider](url), prompt: SCENARIOS.plain.prompt, maxRetries: 0,
                                onError: ({ error }) => errors.push(error) });
    const pieces = [];
    for await (const delta of result.textStream) pieces.push(delta);
    if (errors.length) throw errors[0]; // streamText hands errors to onError and ends the stream quietly
    return { text: pieces.join(''), chunks: pieces.length, finish: await result.finishReason };
  },

  // The SDK runs the tool and sends its result back by itself (a second step).
  async tool(url, provider) {
    const calls = [];
    const getWeather = tool({
      description: WEATHER_TOOL_DESCRIPTION,
      inputSchema: CityArgs,
      execute: async (input) => { calls.push(input); return SCENARIOS.tool.tool_result; },
    });
    const result = await generateText({
      model: PROVIDERS[provider](url), prompt: SCENARIOS.tool.prompt, maxRetries: 0,
      tools: { [SCENARIOS.tool.tool]: getWeather }, stopWhen: stepCountIs(3) });
    const call = result.steps[0].toolCalls[0];
    return { finish: result.steps[0].finishReason, tool: call.toolName, arguments: call.input, executed: calls,
             steps: result.steps.length, text: result.text };
  },

  // generateText with an object output (generateObject's successor in ai 6).
  async structured(url, provider) {
    const result = await generateText({ model: PROVIDERS[provider](url), prompt: SCENARIOS.structured.prompt, maxRetries: 0,
                                        output: Output.object({ schema: Weather }) });
    return { parsed: result.output };
  },

  async rate_limit(url, provider) {
    try {
      await generateText({ model: PROVIDERS[provider](url), prompt: SCENARIOS.rate_limit.prompt, maxRetries: 0,
                           headers: { 'X-Mock-Status': '429' } });
    } catch (error) {
      return { ...describeError(error), library_class: APICallError.isInstance(error),
               retryable: error.isRetryable ?? null };
    }
    return { error: null };
  },
}, Object.keys(PROVIDERS));
