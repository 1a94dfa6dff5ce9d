package org.apache.samza.azure.errors;

/** A create-only write found its target already present. */
public class StorageAlreadyExistsException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "ALREADY_EXISTS";

  public StorageAlreadyExistsException(String message) {
    super(CODE, message);
  }
}
