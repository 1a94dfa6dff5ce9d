package org.apache.samza.azure.storage;

import org.apache.samza.azure.jni.PayloadLayout;
import org.apache.samza.azure.jni.Payloads;

/** A document's bytes and the ETag (version) they were read at ({@link Payloads#DOCUMENT}). */
public final class Document {
  private final byte[] body;
  private final String etag;

  Document(byte[] body, String etag) {
    this.body = body;
    this.etag = etag;
  }

  static Document fromNative(Object[] pair) {
    if (pair == null) {
      return null;
    }
    PayloadLayout l = Payloads.DOCUMENT;
    l.check(pair.length);
    return new Document((byte[]) pair[l.index("body")], (String) pair[l.index("etag")]);
  }

  public byte[] body() {
    return body;
  }

  public String etag() {
    return etag;
  }
}
