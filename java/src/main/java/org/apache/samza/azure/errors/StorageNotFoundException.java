package org.apache.samza.azure.errors;

/** The blob, container, table or entity does not exist. */
public class StorageNotFoundException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "NOT_FOUND";

  public StorageNotFoundException(String message) {
    super(CODE, message);
  }
}
