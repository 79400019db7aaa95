/** Requests to the aiflow-nb service through Jupyter's proxy (`/aiflow/...`). */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { INotebookInfo } from './author';
import { IReplayResult } from './dryrun';
import { errorField, errorMessage, IAiflowEvent, IEventInput, IExecution, ITaskExecution, IWorkflow } from './state';

/** A failed request, with the service's message (shown in the panel's error line). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string
  ) {
    super(message);
  }

  /** The proxy's answer when no service runs. */
  get serviceDown(): boolean {
    return this.status === 503;
  }
}

export interface IServiceState {
  running: boolean;
  home: string;
  url?: string;
  version?: string;
  pid?: number;
}

export interface IHealth {
  status: string;
  version: string;
  latest_offset: number;
}

/** The part of a workflow's spec the views read. */
export interface IWorkflowSpec {
  name: string;
  namespace: string;
  tasks: { name: string; kind: string; [field: string]: unknown }[];
  [field: string]: unknown;
}

export type TaskAction = 'start' | 'stop' | 'restart';

/** Why a run was made: the chain of causes (the run first, the root last) and the cause in a few words. */
export interface IWhy {
  links: { kind: string; text: string; offset?: number | null; key?: string | null }[];
  short: string;
}

const q = encodeURIComponent;

export class AiflowApi {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** One request; resolves to the response text, rejects with an ApiError. */
  async request(path: string, init: RequestInit = {}): Promise<string> {
    const url = URLExt.join(this.settings.baseUrl, 'aiflow', path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (err) {
      throw new ApiError(0, `Jupyter does not answer: ${(err as Error).message}`);
    }
    const text = await response.text();
    if (!response.ok) {
      throw new ApiError(response.status, errorMessage(response.status, text), errorField(text));
    }
    return text;
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    return JSON.parse(await this.request(path, init)) as T;
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.json<T>(path, {
      method: 'POST',
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' }
    });
  }

  service(): Promise<IServiceState> {
    return this.json('service');
  }

  startService(): Promise<IServiceState> {
    return this.post('service');
  }

  health(): Promise<IHealth> {
    return this.json('api/v1/health');
  }

  async workflows(): Promise<IWorkflow[]> {
    return (await this.json<{ workflows: IWorkflow[] }>('api/v1/workflows')).workflows;
  }

  /** A workflow's newest `limit` executions, newest first (the service sends the newest N, oldest first). */
  async executions(namespace: string, workflow: string, limit = 20): Promise<IExecution[]> {
    const path = `api/v1/executions?namespace=${q(namespace)}&workflow=${q(workflow)}&limit=${limit}`;
    const { executions } = await this.json<{ executions: IExecution[] }>(path);
    return executions.sort((a, b) => b.id - a.id);
  }

  async runningExecutions(): Promise<IExecution[]> {
    return (await this.json<{ executions: IExecution[] }>('api/v1/executions?status=RUNNING')).executions;
  }

  async taskExecutions(executionId: number): Promise<ITaskExecution[]> {
    return (await this.json<{ task_executions: ITaskExecution[] }>(`api/v1/executions/${executionId}/tasks`))
      .task_executions;
  }

  graph(namespace: string, name: string, execution: number | null): Promise<string> {
    const query = execution === null ? '' : `?execution=${execution}`;
    return this.request(`api/v1/workflows/${q(namespace)}/${q(name)}/graph${query}`);
  }

  async startExecution(namespace: string, name: string): Promise<number> {
    return (await this.post<{ id: number }>(`api/v1/workflows/${q(namespace)}/${q(name)}/executions`)).id;
  }

  stopExecution(id: number): Promise<IExecution> {
    return this.post(`api/v1/executions/${id}/stop`);
  }

  taskAction(executionId: number, task: string, action: TaskAction): Promise<unknown> {
    return this.post(`api/v1/executions/${executionId}/tasks/${q(task)}/${action}`);
  }

  pause(namespace: string, name: string, paused: boolean): Promise<IWorkflow> {
    return this.post(`api/v1/workflows/${q(namespace)}/${q(name)}/${paused ? 'pause' : 'resume'}`);
  }

  async sendEvent(event: IEventInput): Promise<number> {
    return (await this.post<{ offset: number }>('api/v1/events', event)).offset;
  }

  /** A workflow with the spec of its latest version, or of ``version``. */
  workflow(namespace: string, name: string, version?: number): Promise<IWorkflow & { spec: IWorkflowSpec }> {
    const which = version === undefined ? '' : `?version=${version}`;
    return this.json(`api/v1/workflows/${q(namespace)}/${q(name)}${which}`);
  }

  deleteWorkflow(namespace: string, name: string): Promise<unknown> {
    return this.json(`api/v1/workflows/${q(namespace)}/${q(name)}`, { method: 'DELETE' });
  }

  /** The kernel and parameters of the notebook at a contents path (the dialog's first request). */
  notebookInfo(path: string): Promise<INotebookInfo> {
    return this.json(`author/notebook?path=${q(path)}`);
  }

  /** Submit the dialog's draft; a mistake rejects with an ApiError naming its field. */
  submitDraft(draft: Record<string, unknown>): Promise<{ namespace: string; name: string; version: number }> {
    return this.post('author/submit', draft);
  }

  why(taskExecutionId: number): Promise<IWhy> {
    return this.json(`api/v1/task-executions/${taskExecutionId}/why`);
  }

  /** A workflow through the rules over a window of the log, in memory (see dryrun.ts). */
  replay(body: Record<string, unknown>): Promise<IReplayResult> {
    return this.post('api/v1/replay', body);
  }

  taskLog(id: number): Promise<string> {
    return this.request(`api/v1/task-executions/${id}/log`);
  }

  taskNotebook(id: number): Promise<unknown> {
    return this.json(`api/v1/task-executions/${id}/notebook`);
  }

  /** The WebSocket URL of the event stream (Jupyter's cookie, or its token when the page has one). */
  streamUrl(since: number): string {
    let url = URLExt.join(this.settings.wsUrl, 'aiflow', 'api/v1/stream') + `?since=${since}`;
    if (this.settings.appendToken && this.settings.token) {
      url += `&token=${q(this.settings.token)}`;
    }
    return url;
  }
}

export type { IAiflowEvent };
