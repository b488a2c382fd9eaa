import { json } from '@codemirror/lang-json';
import { EditorView } from '@codemirror/view';
import CodeMirror from '@uiw/react-codemirror';
import { useCallback, useMemo, useState } from 'react';
import { createPortal } from 'react-dom';

/**
 * The raw JSON of a document in CodeMirror, labelled for assistive
 * technology. The editor lives in a shadow root: there CodeMirror styles
 * itself with constructed style sheets instead of a <style> element, which
 * Studio's Content-Security-Policy (`style-src 'self'`) would refuse.
 */
export default function JsonEditor({
  value,
  onChange,
  label,
  readOnly,
  describedBy,
}: {
  value: string;
  onChange: (text: string) => void;
  label: string;
  readOnly?: boolean;
  describedBy?: string;
}) {
  const [shadow, setShadow] = useState<ShadowRoot | null>(null);
  const host = useCallback((element: HTMLDivElement | null) => {
    if (element) setShadow(element.shadowRoot ?? element.attachShadow({ mode: 'open' }));
  }, []);
  const extensions = useMemo(
    () => [
      json(),
      EditorView.lineWrapping,
      EditorView.contentAttributes.of({ 'aria-label': label, ...(describedBy ? { 'aria-describedby': describedBy } : {}) }),
      EditorView.theme({
        '&': { border: '1px solid #6a737d', borderRadius: '0.25rem', fontSize: '0.9rem' },
        '&.cm-focused': { outline: '3px solid #f0b400', outlineOffset: '2px' },
      }),
    ],
    [label, describedBy],
  );
  return (
    <div ref={host} className="json-editor">
      {shadow &&
        createPortal(
          <CodeMirror
            root={shadow}
            value={value}
            onChange={onChange}
            extensions={extensions}
            readOnly={readOnly}
            editable={!readOnly}
            theme="light"
            // Tab moves to the next control instead of indenting: a keyboard
            // user must be able to leave the editor (WCAG 2.1.2, no keyboard trap).
            indentWithTab={false}
            basicSetup={{ foldGutter: false, highlightActiveLine: false, autocompletion: false }}
            minHeight="12rem"
            maxHeight="32rem"
          />,
          shadow,
        )}
    </div>
  );
}
