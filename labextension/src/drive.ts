/**
 * A read-only JupyterLab drive of executed notebooks: `aiflow-runs:<task> #<seq> [<id>] (read-only).ipynb`
 * is the notebook of task execution <id>, fetched through the proxy. Nothing is
 * written to the Jupyter root dir, and JupyterLab shows the document read-only and untrusted.
 */

import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { AiflowApi, ApiError } from './api';
import { DRIVE, lockCells, notebookTimes, taskExecutionOf } from './runs';

function readOnly(): Promise<never> {
  return Promise.reject(new Error('executed notebooks of aiflow-nb are read-only (use File > Save As... to copy one)'));
}

export class RunsDrive implements Contents.IDrive {
  readonly name = DRIVE;

  constructor(private readonly api: AiflowApi) {
    this.serverSettings = api.settings;
  }

  readonly serverSettings: ServerConnection.ISettings;

  get fileChanged(): ISignal<Contents.IDrive, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
    Signal.clearData(this);
  }

  /** Fetch a task execution's notebook ahead of opening it; false when it has none (not a notebook task). */
  async prefetch(taskExecutionId: number): Promise<boolean> {
    try {
      this._cache.set(taskExecutionId, await this.api.taskNotebook(taskExecutionId));
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        return false;
      }
      throw err;
    }
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const base = { writable: false, mimetype: '', format: null, size: undefined };
    if (localPath === '') {
      const now = this._started.toISOString();
      const content = options?.content === false ? null : [];
      return { ...base, created: now, last_modified: now, name: '', path: '', type: 'directory', content };
    }
    const id = taskExecutionOf(localPath);
    if (id === null) {
      throw new Error(`no executed notebook at ${localPath}`);
    }
    let content: unknown = null;
    if (options?.content !== false || !this._times.has(id)) {
      // An executed notebook never changes, so what prefetch got is as good as a new request.
      const notebook = this._cache.get(id) ?? (await this.api.taskNotebook(id));
      this._times.set(id, notebookTimes(notebook, new Date()));
      if (options?.content === false) {
        this._cache.set(id, notebook);
      } else {
        this._cache.delete(id);
        content = lockCells(notebook);
      }
    }
    return {
      ...base,
      ...this._times.get(id)!,
      name: localPath,
      path: localPath,
      type: 'notebook',
      format: 'json',
      mimetype: 'application/x-ipynb+json',
      content
    };
  }

  async getDownloadUrl(localPath: string): Promise<string> {
    const id = taskExecutionOf(localPath);
    return id === null ? '' : this.api.settings.baseUrl + `aiflow/api/v1/task-executions/${id}/notebook`;
  }

  newUntitled(): Promise<Contents.IModel> {
    return readOnly();
  }

  delete(): Promise<void> {
    return readOnly();
  }

  rename(): Promise<Contents.IModel> {
    return readOnly();
  }

  save(): Promise<Contents.IModel> {
    return readOnly();
  }

  copy(): Promise<Contents.IModel> {
    return readOnly();
  }

  async createCheckpoint(localPath: string): Promise<Contents.ICheckpointModel> {
    // Nothing is saved: the checkpoint is the record itself, dated when it ran.
    const model = await this.get(localPath, { content: false });
    return { id: 'record', last_modified: model.last_modified };
  }

  async listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  restoreCheckpoint(): Promise<void> {
    return readOnly();
  }

  async deleteCheckpoint(): Promise<void> {
    // nothing is ever checkpointed
  }

  private _cache = new Map<number, unknown>();
  private _times = new Map<number, { created: string; last_modified: string }>();
  private _started = new Date();
  private _disposed = false;
  private _fileChanged = new Signal<Contents.IDrive, Contents.IChangedArgs>(this);
}
