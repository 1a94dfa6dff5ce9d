package org.apache.samza.azure.storage;

/** A document's bytes and the ETag (version) they were read at. */
public final class Document {
  private final byte[] body;
  private final String etag;

  Document(byte[] body, String etag) {
    this.body = body;
    this.etag = etag;
  }

  static Document fromNative(Object[] pair) {
    return pair == null ? null : new Document((byte[]) pair[0], (String) pair[1]);
  }

  public byte[] body() {
    return body;
  }

  public String etag() {
    return etag;
  }
}
