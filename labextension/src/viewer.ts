/**
 * The viewer of executed notebooks: a notebook widget factory of its own for the runs drive, which never
 * starts nor asks for a kernel, so a run notebook opened by the panel, by a reload or by a workspace
 * restore is the same read-only record. Its widgets stay out of the notebook tracker (no notebook command,
 * no kernel-bound extension acts on them) and are restored by a tracker of their own.
 */

import { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { WidgetTracker } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { NotebookPanel, NotebookWidgetFactory } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { LabIcon } from '@jupyterlab/ui-components';

import { DRIVE } from './runs';

/** The widget factory's name; a restored tab names it, so it must not change. */
export const RUN_FACTORY = 'aiflow-nb executed notebook';
const FILE_TYPE = 'aiflow-nb-run';

export interface IViewerOptions {
  rendermime: IRenderMimeRegistry;
  editorServices: IEditorServices;
  contentFactory: NotebookPanel.IContentFactory;
  /** The notebook factory of JupyterLab, whose editor and notebook settings the viewer shares. */
  notebookFactory: NotebookWidgetFactory.IFactory | null;
  restorer: ILayoutRestorer | null;
  icon: LabIcon;
}

/** Register the runs drive's file type and viewer; returns the tracker of the open run notebooks. */
export function registerViewer(app: JupyterFrontEnd, options: IViewerOptions): WidgetTracker<NotebookPanel> {
  const { docRegistry } = app;
  // Every path of the runs drive (one file name, no folder), before the extension decides: the viewer
  // is the default there and is offered nowhere else.
  docRegistry.addFileType({
    name: FILE_TYPE,
    displayName: 'Executed notebook (aiflow-nb)',
    extensions: [],
    pattern: `^${DRIVE}:`,
    contentType: 'notebook',
    fileFormat: 'json',
    mimeTypes: ['application/x-ipynb+json'],
    icon: options.icon
  });
  const factory = new NotebookWidgetFactory({
    name: RUN_FACTORY,
    label: 'Executed notebook (read-only)',
    fileTypes: [FILE_TYPE],
    defaultFor: [FILE_TYPE],
    modelName: 'notebook',
    preferKernel: false,
    canStartKernel: false,
    shutdownOnClose: false,
    autoStartDefault: false,
    rendermime: options.rendermime,
    contentFactory: options.contentFactory,
    mimeTypeService: options.editorServices.mimeTypeService,
    editorConfig: options.notebookFactory?.editorConfig,
    notebookConfig: options.notebookFactory?.notebookConfig
  });
  docRegistry.addWidgetFactory(factory);

  const tracker = new WidgetTracker<NotebookPanel>({ namespace: 'aiflow-nb-run' });
  factory.widgetCreated.connect((_, panel) => {
    markRecord(panel.context);
    void tracker.add(panel);
  });
  if (options.restorer) {
    void options.restorer.restore(tracker, {
      command: 'docmanager:open',
      args: panel => ({ path: panel.context.path, factory: RUN_FACTORY }),
      name: panel => panel.context.path
    });
  }
  return tracker;
}

/** No kernel, ever: set on the context before it loads (which is asynchronous), whoever opened it. */
function markRecord(context: DocumentRegistry.IContext<DocumentRegistry.IModel>): void {
  const session = context.sessionContext;
  session.kernelPreference = {
    ...session.kernelPreference,
    shouldStart: false,
    canStart: false,
    autoStartDefault: false,
    // nor one left at the same path by an older page
    shouldReuse: false
  };
}
